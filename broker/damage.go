package broker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
)

// A damaged data directory (a block file cut short by a full disk or a
// crash, or removed by hand) loads without an error: JetStream rebuilds
// what it can and only warns. So the node keeps its own account of its
// streams in the data directory (stateFile), written at start, every
// stateEvery and at shutdown, and compares at start: a stream whose last
// sequence went back, or a bucket that never shrinks (membership,
// webhooks) holding fewer records than before, lost records. They are
// counted and logged at error level with the data directory, so that an
// operator restores them from a backup (presencectl export, then import).

// stateFile, in the data directory, holds the last known state of every
// stream.
const stateFile = "presenced-streams.json"

// stateEvery is how often the node writes stateFile while it runs.
const stateEvery = 30 * time.Second

// streamState is what the node remembers of a stream.
type streamState struct {
	Msgs    uint64 `json:"msgs"`
	LastSeq uint64 `json:"lastSeq"`
}

// neverShrinks lists the streams that keep one record per key and remove
// none (deletes are markers), so fewer records than before means loss.
var neverShrinks = map[string]bool{"KV_" + membership.DefaultBucket: true, "KV_presenced_webhooks": true}

// streamStates reads the current state of every stream.
func (s *Server) streamStates(ctx context.Context) map[string]streamState {
	out := map[string]streamState{}
	for info := range s.js.ListStreams(ctx).Info() {
		out[info.Config.Name] = streamState{Msgs: info.State.Msgs, LastSeq: info.State.LastSeq}
	}
	return out
}

// reportDamage compares the streams with what the node remembers of them
// and logs what was lost; it returns how many records were.
func (s *Server) reportDamage(ctx context.Context) int {
	if s.ns == nil {
		return 0 // an external NATS keeps its own account
	}
	path := filepath.Join(s.cfg.DataDir, stateFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("the streams' last known state is unreadable", zap.String("file", path), zap.Error(err))
		}
		return 0
	}
	var before map[string]streamState
	if err := json.Unmarshal(raw, &before); err != nil {
		s.log.Warn("the streams' last known state is unreadable", zap.String("file", path), zap.Error(err))
		return 0
	}
	now := s.streamStates(ctx)
	total := 0
	for name, was := range before {
		cur, ok := now[name]
		var lost uint64
		switch {
		case !ok && was.Msgs > 0 && neverShrinks[name]:
			lost = was.Msgs
		case !ok:
			continue
		case neverShrinks[name] && cur.Msgs < was.Msgs:
			lost = was.Msgs - cur.Msgs
		case cur.LastSeq < was.LastSeq:
			lost = max(was.LastSeq-cur.LastSeq, 1) // at least the tail
		default:
			continue
		}
		total += int(lost)
		s.log.Error("records lost to damage of the data directory; restore them from a backup (presencectl import)",
			zap.String("stream", name), zap.Uint64("records lost", lost),
			zap.Uint64("records before", was.Msgs), zap.Uint64("records now", cur.Msgs),
			zap.Uint64("last sequence before", was.LastSeq), zap.Uint64("last sequence now", cur.LastSeq),
			zap.String("dir", filepath.Join(s.cfg.DataDir, "jetstream")))
	}
	return total
}

// stateWriter keeps stateFile current.
type stateWriter struct {
	mu sync.Mutex // serialises writes of the file
}

// writeState records the streams' current state in the data directory.
func (s *Server) writeState(ctx context.Context) {
	if s.ns == nil {
		return
	}
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	b, err := json.Marshal(s.streamStates(ctx))
	if err != nil {
		return
	}
	path := filepath.Join(s.cfg.DataDir, stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		s.log.Warn("writing the streams' state failed", zap.String("file", path), zap.Error(err))
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		s.log.Warn("writing the streams' state failed", zap.String("file", path), zap.Error(err))
	}
}

// stateLoop writes the streams' state every stateEvery until quit.
func (s *Server) stateLoop(quit <-chan struct{}) {
	t := time.NewTicker(stateEvery)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.writeState(ctx)
			cancel()
		}
	}
}
