package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/membership"
)

// Membership reaches the presence bucket by JetStream sourcing: the
// presence stream's leader runs a consumer on the membership stream. When
// the answer to that consumer's creation is lost (a cluster forming, a
// leader moving), nats-server waits 30 s for it and then backs off 10 s,
// 20 s, ... up to two minutes, and membership changes stay out of presence
// all that while. The engine watches for it: when the presence stream has
// been behind the membership stream for SourceStall without progress, it
// asks the presence stream's leader to step down; the new leader sets the
// source up again at once.

// sourceWatch is what the engine last saw of the sourcing.
type sourceWatch struct {
	mu     sync.Mutex
	behind bool      // the last check found sourcing behind
	got    uint64    // source sequence of the last member change sourced
	since  time.Time // when got last moved while behind, or the last kick
	kicks  uint64
}

// sourcing reports the membership stream's sequence of its last member
// change (want), the source sequence of the last member change the
// presence stream holds (got), and that change's presence revision (rev).
// want is 0 when there is no membership bucket or no member yet.
func (e *Engine) sourcing(ctx context.Context) (want, got, rev uint64, err error) {
	mb, pb := e.cfg.MembershipBucket, e.cfg.Bucket
	ms, err := e.cfg.JetStream.Stream(ctx, streamName(mb))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, 0, 0, nil
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("presence: membership bucket %s: %w", mb, err)
	}
	m, err := ms.GetLastMsgForSubject(ctx, subjectOf(mb, membership.MemberKeyFilter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, 0, nil
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("presence: membership bucket %s: %w", mb, err)
	}
	want = m.Sequence
	ps, err := e.cfg.JetStream.Stream(ctx, streamName(pb))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("presence: bucket %s: %w", pb, err)
	}
	m, err = ps.GetLastMsgForSubject(ctx, subjectOf(pb, membership.MemberKeyFilter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return want, 0, 0, nil
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("presence: bucket %s: %w", pb, err)
	}
	got, _ = sourceSeq(m.Header)
	return want, got, m.Sequence, nil
}

// sourcedUpTo waits until every member change stored in the membership
// bucket so far has been sourced into the presence bucket, and returns the
// presence stream's revision of the last one (0 if there is none). It
// polls, bounded by ctx, asks again while the streams elect leaders (a
// whole cluster restarting), and kicks a stalled source.
func (e *Engine) sourcedUpTo(ctx context.Context) (uint64, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, jskv.AttemptTimeout)
		want, got, rev, err := e.sourcing(actx)
		cancel()
		if err != nil && (ctx.Err() != nil || !jskv.Transient(err)) {
			return 0, err
		}
		switch {
		case err != nil:
			e.log.Debug("presence: checking the sourcing of membership; asking again", zap.Error(err))
		case got >= want:
			return rev, nil
		default:
			e.checkSourcing(ctx, want, got)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("presence: membership not sourced (%d of %d): %w", got, want, ctx.Err())
		case <-t.C:
		}
	}
}

// sourceLoop checks the sourcing every LeaseRefresh. It runs apart from
// the lease loop: its JetStream requests may wait for answers a forming
// cluster does not give, and a lease refresh must never wait behind them.
func (e *Engine) sourceLoop() {
	for e.sleep(e.cfg.LeaseRefresh, nil) {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseTTL)
		e.watchSourcing(ctx)
		cancel()
	}
}

// watchSourcing is the running node's periodic check.
func (e *Engine) watchSourcing(ctx context.Context) {
	want, got, _, err := e.sourcing(ctx)
	if err != nil {
		e.log.Debug("presence: checking the sourcing of membership", zap.Error(err))
		return
	}
	e.checkSourcing(ctx, want, got)
}

// checkSourcing keeps track of the sourcing's progress and kicks it once
// it has been behind for SourceStall without moving; then again at most
// every SourceStall.
func (e *Engine) checkSourcing(ctx context.Context, want, got uint64) {
	now := e.clock.Now()
	w := &e.srcWatch
	w.mu.Lock()
	switch {
	case got >= want:
		w.behind, w.got = false, got
		w.mu.Unlock()
		return
	case !w.behind || got != w.got:
		w.behind, w.got, w.since = true, got, now
		w.mu.Unlock()
		return
	case now.Sub(w.since) < e.cfg.SourceStall:
		w.mu.Unlock()
		return
	}
	w.since = now
	w.mu.Unlock()
	e.kickSourcing(ctx, want, got)
}

// kickSourcing asks the presence stream's leader to step down, unless the
// stream has one replica (there is no other leader to be) or its leader is
// newer than SourceStall (it is setting the source up).
func (e *Engine) kickSourcing(ctx context.Context, want, got uint64) {
	name := streamName(e.cfg.Bucket)
	st, err := e.cfg.JetStream.Stream(ctx, name)
	if err != nil {
		e.log.Warn("presence: membership changes are not reaching the presence bucket", zap.Error(err))
		return
	}
	info := st.CachedInfo()
	log := e.log.With(zap.Uint64("membership_seq", want), zap.Uint64("sourced_seq", got))
	if info.Cluster == nil || len(info.Cluster.Replicas) == 0 {
		log.Warn("presence: membership changes are not reaching the presence bucket (one replica: waiting for nats-server to retry)")
		return
	}
	if ls := info.Cluster.LeaderSince; ls != nil && time.Since(*ls) < e.cfg.SourceStall {
		return
	}
	prefix := e.cfg.JetStream.Options().APIPrefix
	if prefix == "" {
		prefix = jetstream.DefaultAPIPrefix
	}
	if !strings.HasSuffix(prefix, ".") {
		prefix += "."
	}
	msg, err := e.cfg.Conn.RequestWithContext(ctx, prefix+"STREAM.LEADER.STEPDOWN."+name, nil)
	if err == nil {
		var resp struct {
			Success bool                `json:"success"`
			Error   *jetstream.APIError `json:"error"`
		}
		if err = json.Unmarshal(msg.Data, &resp); err == nil && resp.Error != nil {
			err = resp.Error
		}
	}
	if err != nil {
		log.Warn("presence: membership changes are not reaching the presence bucket; asking its leader to step down failed",
			zap.String("leader", info.Cluster.Leader), zap.Error(err))
		return
	}
	e.srcWatch.mu.Lock()
	e.srcWatch.kicks++
	e.srcWatch.mu.Unlock()
	log.Warn("presence: membership changes were not reaching the presence bucket; its leader stepped down so that a new one sets the source up again",
		zap.String("leader", info.Cluster.Leader))
}

// sourceSeq reads the source stream's sequence from a sourced message's
// Nats-Stream-Source header ("<stream> <seq> ...").
func sourceSeq(h nats.Header) (uint64, bool) {
	f := strings.Fields(h.Get("Nats-Stream-Source"))
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	return n, err == nil
}
