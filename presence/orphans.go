package presence

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// A session this node stored and no longer holds open is an orphan: its
// deletion at the end of its grace failed (the stream had no leader for
// longer than the delete may wait), or its creation was stored although it
// reported an error. Nothing else ever removes it: it carries no expiry, and this
// node's lease stays alive, so its user would show online for as long as
// the node runs. After every lease refresh, which proves the stream takes
// writes, the node looks for its orphans; one found at the same revision
// for Grace (at least two looks) lingers no longer and is deleted, with a
// compare-and-set on that revision.

// orphan is an orphaned session as first found.
type orphan struct {
	rev   uint64
	found time.Time
}

// heldSession is a session as the index has it.
type heldSession struct {
	key string
	rev uint64
}

// orphanedSessions lists the sessions stored for node's incarnation inst
// that do not linger and that open does not report open. The caller holds
// e.ownMu (lock order: ownMu before x.mu).
func (x *index) orphanedSessions(node, inst string, open func(id string) bool) []heldSession {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []heldSession
	for s := range x.nodeSessions[node] {
		if s.kind == kindSession && s.rec.Inst == inst && s.rec.Expires.IsZero() && !open(s.rec.Session) {
			out = append(out, heldSession{key: s.key, rev: s.rev})
		}
	}
	return out
}

// dropOrphans looks for this node's orphaned sessions and deletes those
// found for Grace at one revision. It runs on the lease loop's goroutine,
// which alone owns e.orphans.
func (e *Engine) dropOrphans(ctx context.Context) {
	e.ownMu.Lock()
	found := e.x.orphanedSessions(e.cfg.NodeID, e.inst, func(id string) bool { return e.own[id] != nil })
	e.ownMu.Unlock()
	now := e.clock.Now()
	next := make(map[string]orphan, len(found))
	for _, it := range found {
		o, ok := e.orphans[it.key]
		if !ok || o.rev != it.rev {
			next[it.key] = orphan{rev: it.rev, found: now}
			continue
		}
		if now.Sub(o.found) < e.cfg.Grace {
			next[it.key] = o
			continue
		}
		_, err := e.deleteKey(ctx, it.key, it.rev)
		if isWrongSeq(err) {
			continue // written again meanwhile: the next look judges it anew
		}
		if err != nil {
			e.log.Warn("presence: an orphaned session was not deleted", zap.String("key", it.key), zap.Error(err))
			next[it.key] = o
			continue
		}
		e.counts.orphans.Add(1)
		e.log.Info("presence: deleted a session this node no longer holds open", zap.String("key", it.key))
	}
	e.orphans = next
}
