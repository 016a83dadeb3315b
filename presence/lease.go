package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// The lease n.<node> says this node incarnation is alive. Its sessions
// count only while it exists (see index.counted). The node refreshes it
// every LeaseRefresh with expires = now + LeaseTTL; any node's sweeper
// deletes it once it is due.

func (e *Engine) leaseValue() []byte {
	now := e.clock.Now()
	b, _ := json.Marshal(leaseRecord{Node: e.cfg.NodeID, Inst: e.inst, Refreshed: now, Expires: now.Add(e.cfg.LeaseTTL)})
	return b
}

// putLease writes the lease unconditionally (at start, and to take it
// back after it was lost). A lease of an earlier incarnation of this node
// is replaced; that incarnation's sessions stop counting.
func (e *Engine) putLease(ctx context.Context) (uint64, error) {
	rev, err := e.kv.Put(ctx, leaseKey(e.cfg.NodeID), e.leaseValue())
	if err != nil {
		return 0, fmt.Errorf("presence: put lease: %w", err)
	}
	e.checkRev(rev)
	e.ownMu.Lock()
	e.leaseRev = rev
	e.ownMu.Unlock()
	return rev, nil
}

func (e *Engine) leaseLoop() {
	defer e.wg.Done()
	tick := make(chan struct{}, 1)
	for {
		t := e.clock.AfterFunc(e.cfg.LeaseRefresh, func() { kick(tick) })
		select {
		case <-e.quit:
			t.Stop()
			return
		case <-tick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseTTL)
		e.refreshLease(ctx)
		cancel()
		e.checkWatch()
	}
}

// checkWatch is the watch's self-test: this node's own lease write must
// come back through its watch within one refresh interval. If it does not,
// and nothing at all was applied meanwhile, the watch has stalled and is
// resumed from the last revision applied.
func (e *Engine) checkWatch() {
	e.ownMu.Lock()
	rev := e.leaseRev
	e.ownMu.Unlock()
	from := e.Rev()
	if rev <= from {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseRefresh)
	err := e.WaitRev(ctx, rev)
	cancel()
	// A watch that applied anything meanwhile is behind, not stalled (a
	// burst of writes is being worked through).
	if err != nil && errors.Is(err, context.DeadlineExceeded) && e.Rev() == from {
		e.log.Warn("presence: the watch stalled; resuming it", zap.Uint64("applied", e.Rev()), zap.Uint64("stored", rev))
		e.restartWatch()
	}
}

// refreshLease extends the lease with a compare-and-set on its revision.
// If the lease is gone (this node was deemed dead, e.g. after a long pause)
// it is taken back and every open session is written again, since the other
// nodes may have purged them.
func (e *Engine) refreshLease(ctx context.Context) {
	e.ownMu.Lock()
	rev := e.leaseRev
	e.ownMu.Unlock()
	newRev, err := e.kv.Update(ctx, leaseKey(e.cfg.NodeID), e.leaseValue(), rev)
	if err == nil {
		e.ownMu.Lock()
		e.leaseRev = newRev
		e.ownMu.Unlock()
		return
	}
	if !isWrongSeq(err) {
		e.log.Warn("presence: lease refresh failed", zap.Error(err))
		return
	}
	// Maybe an earlier refresh landed although it reported an error.
	if cur, gerr := e.kv.Get(ctx, leaseKey(e.cfg.NodeID)); gerr == nil {
		var l leaseRecord
		if json.Unmarshal(cur.Value(), &l) == nil && l.Inst == e.inst {
			newRev, err := e.kv.Update(ctx, leaseKey(e.cfg.NodeID), e.leaseValue(), cur.Revision())
			if err != nil {
				e.log.Warn("presence: lease refresh failed", zap.Error(err))
				newRev = cur.Revision()
			}
			e.ownMu.Lock()
			e.leaseRev = newRev
			e.ownMu.Unlock()
			return
		}
	}
	e.log.Warn("presence: lease lost; taking it back and rewriting sessions")
	if _, err := e.putLease(ctx); err != nil {
		e.log.Warn("presence: lease recovery failed", zap.Error(err))
		return
	}
	for _, s := range e.ownSessions() {
		if err := s.rewrite(ctx); err != nil {
			e.log.Warn("presence: rewriting session failed", zap.String("session", s.id), zap.Error(err))
		}
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
