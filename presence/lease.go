package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/internal/jskv"
	"go.uber.org/zap"
)

// The lease n.<node> says this node incarnation is alive. Its sessions
// count only while it exists (see index.counted). The node refreshes it
// every LeaseRefresh; any node's sweeper deletes it once its owner is
// known dead (see liveness.go).

func (e *Engine) leaseValue() []byte {
	now := e.clock.Now()
	e.ownMu.Lock()
	inst := e.inst
	e.ownMu.Unlock()
	b, _ := json.Marshal(leaseRecord{Node: e.cfg.NodeID, Inst: inst, Refreshed: now, Expires: now.Add(e.cfg.LeaseTTL)})
	return b
}

// putLease writes the lease unconditionally (at start, and to take it
// back after it was lost), asking again while the store elects a leader.
// A lease of an earlier incarnation of this node is replaced; that
// incarnation's sessions stop counting.
func (e *Engine) putLease(ctx context.Context) (uint64, error) {
	rev, err := jskv.Retry(ctx, func(ctx context.Context) (uint64, error) {
		return e.bucket().Put(ctx, leaseKey(e.cfg.NodeID), e.leaseValue())
	})
	if err != nil {
		return 0, fmt.Errorf("presence: put lease: %w", err)
	}
	e.ownMu.Lock()
	e.leaseRev = rev
	e.ownMu.Unlock()
	return rev, nil
}

// leaseLoop refreshes the lease every LeaseRefresh. An attempt waits at
// most half of that; a failed one is tried again every LeaseRefresh/8, so
// that the lease is written within moments of the store taking writes
// again (after a leader election, a partition, a lost connection).
func (e *Engine) leaseLoop() {
	wait := e.cfg.LeaseRefresh
	for e.sleep(wait, nil) {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseRefresh/2)
		err := e.refreshLease(ctx)
		cancel()
		now := e.clock.Now()
		if err == nil {
			e.avail.leaseWritten(now)
			wait = e.cfg.LeaseRefresh
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseRefresh/2)
			e.rewriteUnwritten(ctx)
			e.dropOrphans(ctx)
			cancel()
			continue
		}
		e.avail.leaseFailed(now, err)
		wait = e.cfg.LeaseRefresh / 8
	}
}

// refreshLease extends the lease with a compare-and-set on its revision.
// If the lease is gone, or another incarnation's, the stream itself may
// have been lost (the epoch key says: then the engine resets), or this node
// was deemed dead (a long pause, a partition): it takes the lease back and
// writes its open sessions again, since the other nodes purge them.
func (e *Engine) refreshLease(ctx context.Context) error {
	e.ownMu.Lock()
	rev := e.leaseRev
	e.ownMu.Unlock()
	newRev, err := e.bucket().Update(ctx, leaseKey(e.cfg.NodeID), e.leaseValue(), rev)
	if err == nil {
		e.ownMu.Lock()
		e.leaseRev = newRev
		e.ownMu.Unlock()
		return nil
	}
	if !isWrongSeq(err) {
		if e.streamGone(ctx) {
			e.resets.request("the presence stream is gone")
			return ErrResetting
		}
		return fmt.Errorf("presence: lease refresh: %w", err)
	}
	// Maybe an earlier refresh landed although it reported an error.
	cur, gerr := e.read(ctx, leaseKey(e.cfg.NodeID))
	switch {
	case gerr == nil:
		var l leaseRecord
		e.ownMu.Lock()
		inst := e.inst
		e.ownMu.Unlock()
		if json.Unmarshal(cur.Value(), &l) == nil && l.Inst == inst {
			newRev, err := e.bucket().Update(ctx, leaseKey(e.cfg.NodeID), e.leaseValue(), cur.Revision())
			if err != nil {
				return fmt.Errorf("presence: lease refresh: %w", err)
			}
			e.ownMu.Lock()
			e.leaseRev = newRev
			e.ownMu.Unlock()
			return nil
		}
	case !errors.Is(gerr, jetstream.ErrKeyNotFound):
		return fmt.Errorf("presence: lease refresh: %w", gerr)
	}
	if lost, err := e.streamLost(ctx); err != nil {
		return err
	} else if lost {
		e.resets.request("the epoch key is gone")
		return ErrResetting
	}
	// Sessions in their grace stopped counting with the lease: let them go
	// first (a failure is tried again with the next refresh).
	if err := e.dropHeld(ctx, true); err != nil {
		return err
	}
	e.log.Warn("presence: lease lost; taking it back and writing this node's sessions again")
	e.counts.leasesLost.Add(1)
	if _, err := e.putLease(ctx); err != nil {
		return err
	}
	e.rewrite(ctx, e.ownSessions())
	return nil
}

// rewrite writes sessions again after the lease was taken back: the
// other nodes deleted them with it. One whose write fails (the refresh's
// deadline passed while the store was slow to take the writes), or whose
// write slot is taken (a write the store has not answered, which would
// hold the others back past the deadline), is tried again after each
// lease refresh until it is written or closed: left deleted, its user
// read offline on every node while connected.
func (e *Engine) rewrite(ctx context.Context, ss []*Session) {
	var failed []*Session
	for _, s := range ss {
		if !s.tryAcquire() {
			failed = append(failed, s)
			continue
		}
		s.release()
		if err := s.rewrite(ctx); err != nil && !errors.Is(err, ErrSessionClosed) {
			e.log.Warn("presence: writing a session again failed; trying again after the next lease refresh",
				zap.String("session", s.id), zap.Error(err))
			failed = append(failed, s)
		}
	}
	e.ownMu.Lock()
	e.unwritten = failed
	e.ownMu.Unlock()
}

// rewriteUnwritten tries again the sessions whose rewrite failed.
func (e *Engine) rewriteUnwritten(ctx context.Context) {
	e.ownMu.Lock()
	ss := e.unwritten
	e.ownMu.Unlock()
	if len(ss) > 0 {
		e.rewrite(ctx, ss)
	}
}

func (e *Engine) ownSessions() []*Session {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	out := make([]*Session, 0, len(e.own))
	for _, s := range e.own {
		out = append(out, s)
	}
	return out
}
