package presence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/protocol"
)

// The epoch names one incarnation of the presence stream: revisions count
// within it. It is the value of the key "epoch", created by the first node
// that finds none. When the stream is lost (a memory stream after every
// server restarted, an external NATS that lost its data, a bucket deleted
// by hand) the key goes with it: a node notices when its lease is gone and
// so is the epoch key, or when its watch sees the key change. It then
// resets: it binds the bucket again (creating it), takes or creates the new
// epoch, writes its lease and its open sessions again, loads the index from
// the new stream, and pushes every subscription a fresh snapshot, since
// their revisions mean nothing under the new epoch. Clients that resume
// later with the old epoch get fresh snapshots too.

// ErrResetting is the cause reported while the engine resets after the
// presence stream was lost.
var ErrResetting = errors.New("presence: the presence stream was lost; loading it again under a new epoch")

// ensureEpoch returns the stream's epoch, creating it if there is none.
func (e *Engine) ensureEpoch(ctx context.Context) (string, error) {
	for {
		v, err := jskv.Retry(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
			return e.read(ctx, keyEpoch)
		})
		if err == nil {
			return string(v.Value()), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return "", fmt.Errorf("presence: read the epoch: %w", err)
		}
		epoch := time.Now().UTC().Format("20060102T150405.000Z") + "-" + newID()[:8]
		_, err = jskv.Retry(ctx, func(ctx context.Context) (uint64, error) {
			return e.bucket().Create(ctx, keyEpoch, []byte(epoch))
		})
		if err == nil {
			e.log.Info("presence: a new epoch begins", zap.String("epoch", epoch))
			return epoch, nil
		}
		if !isWrongSeq(err) { // another node created it first: read it
			return "", fmt.Errorf("presence: create the epoch: %w", err)
		}
	}
}

// streamLost reports whether the epoch this node follows is gone from the
// bucket.
func (e *Engine) streamLost(ctx context.Context) (bool, error) {
	v, err := e.read(ctx, keyEpoch)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrBucketNotFound),
		errors.Is(err, jetstream.ErrStreamNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("presence: read the epoch: %w", err)
	}
	e.lifeMu.Lock()
	cur := e.epoch
	e.lifeMu.Unlock()
	return string(v.Value()) != cur, nil
}

// read reads key from the presence stream's leader: the lease and epoch
// reads decide a compare-and-set and whether the stream was lost, which a
// lagging replica's direct get must not decide.
func (e *Engine) read(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return jskv.GetFromLeader(ctx, e.cfg.JetStream, e.bucket(), key)
}

// streamGone reports whether the presence stream no longer exists (a write
// that nothing answered may mean that, or an election).
func (e *Engine) streamGone(ctx context.Context) bool {
	_, err := e.cfg.JetStream.Stream(ctx, streamName(e.cfg.Bucket))
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

// resetter runs at most one reset at a time.
type resetter struct {
	mu sync.Mutex
	// mu guards the following fields.
	e       *Engine
	running bool
	wg      sync.WaitGroup
}

// request starts a reset unless one is running. It never blocks: the
// index calls it with its lock held.
func (r *resetter) request(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running || r.e == nil {
		return
	}
	r.running = true
	r.wg.Add(1)
	go r.e.reset(why)
}

func (r *resetter) wait() { r.wg.Wait() }

// reset loads the lost stream again under a new epoch (see above), trying
// until it succeeds or the engine stops.
func (e *Engine) reset(why string) {
	defer func() {
		e.resets.mu.Lock()
		e.resets.running = false
		e.resets.mu.Unlock()
		e.resets.wg.Done()
	}()
	e.log.Warn("presence: the presence stream was lost; loading it again under a new epoch", zap.String("why", why))
	e.avail.setDown(e.clock.Now(), ErrResetting)
	for attempt := 0; ; attempt++ {
		if e.running() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() {
			select {
			case <-e.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := e.resetOnce(ctx)
		cancel()
		if err == nil {
			e.avail.leaseWritten(e.clock.Now())
			e.log.Info("presence: loaded again", zap.String("epoch", e.Epoch()), zap.Uint64("rev", e.Rev()))
			return
		}
		e.log.Warn("presence: loading the presence stream again failed; trying again", zap.Error(err))
		select {
		case <-e.stop:
			return
		case <-time.After(protocol.Backoff(attempt, 250*time.Millisecond, 5*time.Second, 0.5)):
		}
	}
}

func (e *Engine) resetOnce(ctx context.Context) error {
	e.lifeMu.Lock()
	f := e.follow
	e.follow = nil
	e.lifeMu.Unlock()
	if f != nil {
		f.Stop()
		e.counts.resumesBefore.Add(f.Resumes())
	}
	e.x.reset()
	if err := e.dropHeld(ctx, false); err != nil {
		return err
	}
	if err := e.load(ctx); err != nil {
		return err
	}
	var last uint64
	for _, s := range e.ownSessions() {
		if err := s.rewrite(ctx); err != nil && !errors.Is(err, ErrSessionClosed) {
			return fmt.Errorf("presence: writing session %s again: %w", s.id, err)
		}
		last = max(last, s.Rev())
	}
	if err := e.WaitRev(ctx, last); err != nil {
		return err
	}
	e.x.pushResets()
	return nil
}

// reset forgets everything derived from the stream but the subscriptions,
// which pushResets then tells that their history broke.
func (x *index) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rev, x.loaded, x.purged = 0, false, 0
	x.users = make(map[string]*userState)
	x.sessions = make(map[string]*sessionEntry)
	x.leases = make(map[string]*leaseEntry)
	x.nodeSessions = make(map[string]map[*sessionEntry]struct{})
	x.tally = newSessionTally()
	x.markers = make(map[string]marker)
	x.gone = make(map[string]map[string]uint64)
	x.expiry, x.sweepArmed = nil, time.Time{}
	x.touched, x.changes = x.touched[:0], nil
	x.activeAt, x.active = time.Time{}, 0
	clear(x.fan.dirty)
	x.fan.dirty = x.fan.dirty[:0]
	for id, g := range x.groups {
		if len(g.subs) == 0 && len(g.countSubs) == 0 {
			delete(x.groups, id)
			continue
		}
		g.members, g.sorted, g.online, g.rev = make(map[string]uint64), nil, 0, 0
		g.hist.reset(0)
		clear(g.pending)
		g.pending, g.countsChanged, g.dirty = g.pending[:0], false, false
	}
}

// pushResets gives every subscription a fresh start after a reset: a
// snapshot to full subscribers, counts to count watchers.
func (x *index) pushResets() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, g := range x.groups {
		if len(g.subs) > 0 {
			snap := x.snapshotLocked(g.id, false)
			snap.Fresh = true
			b := Batch{Group: g.id, Rev: x.rev, Online: snap.Online, Total: snap.Total, Reset: &snap}
			for _, s := range g.subs {
				x.push(s, b)
			}
		}
		if len(g.countSubs) > 0 || len(x.fan.watchAll) > 0 {
			g.countsChanged = true
			x.markDirty(g)
		}
	}
	x.flushLocked()
}
