package presence

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Time-based deletions are stream events like any other. Every node keeps
// the keys that carry an expiry in a heap and, once one is due, deletes it
// with a compare-and-set on the revision it saw: one node wins, the others
// get "wrong last sequence" and move on, and every node applies the one
// deletion at the same revision. The sweeper handles lingering sessions
// (grace period), backend source TTLs, manual status expiry and node leases.
//
// To spare the bucket a delete from every node, only the leader (the live
// node with the smallest id) sweeps sessions, sources and manual statuses
// when they are due; the others step in one LeaseTTL later. Leases are not
// due at a time: every pass judges them by stream time and heartbeats (see
// liveness.go), on every node at once, so a dead leader is replaced
// quickly.

const (
	// markerRetention is how long delete markers of sessions and sources
	// stay in the stream; late-starting nodes learn last-seen times from
	// them. After it they are purged so a memory stream does not grow with
	// every session ever closed.
	markerRetention = time.Hour
	// markerPurgeBatch bounds the purges of one janitor pass.
	markerPurgeBatch = 1000
)

// sweepItem is a key due for deletion at revision rev.
type sweepItem struct {
	key  string
	rev  uint64
	kind keyKind
	node string // for leases
}

// due pops every item due at now that is still current and returns
// those this node should delete, and the time of the next item.
func (x *index) due(now time.Time, backup time.Duration) ([]sweepItem, time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	leader := x.leaderLocked()
	lead := leader == "" || leader == x.self
	var out []sweepItem
	for {
		it, ok := x.expiry.next()
		if !ok || it.at.After(now) {
			break
		}
		x.expiry.pop()
		kind, a, _ := parseKey(it.key)
		if x.revOf(it.key, kind, a) != it.rev {
			continue // the key moved on or is gone
		}
		if !lead && !it.backup {
			it.at, it.backup = it.at.Add(backup), true
			x.expiry.add(it)
			continue
		}
		out = append(out, sweepItem{key: it.key, rev: it.rev, kind: kind, node: a})
	}
	var next time.Time
	if it, ok := x.expiry.next(); ok {
		next = it.at
	}
	x.sweepArmed = next
	return out, next
}

// revOf is the revision of a key that carries an expiry, 0 if it has none.
func (x *index) revOf(key string, kind keyKind, a string) uint64 {
	switch kind {
	case kindSession, kindSource:
		if s := x.sessions[key]; s != nil && !s.rec.Expires.IsZero() {
			return s.rev
		}
	case kindManual:
		if u := x.users[a]; u != nil && u.manual != nil && !u.manual.rec.Expires.IsZero() {
			return u.manual.rev
		}
	}
	return 0
}

// retry puts an item whose deletion failed back into the heap.
func (x *index) retry(it sweepItem, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.expiry.add(expiryItem{at: at, key: it.key, rev: it.rev, backup: true})
	if x.expiryKick != nil && at.Before(x.sweepArmed) {
		x.sweepArmed = at
		x.expiryKick()
	}
}

// staleSessions lists the sessions that no longer count and do not
// linger: those of a node whose lease is gone, or of an earlier incarnation
// of a node. With node set, it lists that node's non-lingering sessions
// whatever the index thinks of its lease (the caller just deleted it).
func (x *index) staleSessions(node string) []sweepItem {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []sweepItem
	add := func(s *sessionEntry) {
		if s.kind == kindSession && s.rec.Expires.IsZero() {
			out = append(out, sweepItem{key: s.key, rev: s.rev, kind: s.kind})
		}
	}
	if node != "" {
		for s := range x.nodeSessions[node] {
			add(s)
		}
		return out
	}
	for _, ns := range x.nodeSessions {
		for s := range ns {
			if !x.counted(s) {
				add(s)
			}
		}
	}
	return out
}

// oldMarkers lists delete markers older than before.
func (x *index) oldMarkers(before time.Time, limit int) []sweepItem {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []sweepItem
	for k, m := range x.markers {
		if m.created.Before(before) {
			out = append(out, sweepItem{key: k, rev: m.rev})
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

func (x *index) forgetMarker(key string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if m, ok := x.markers[key]; ok && m.rev == rev {
		delete(x.markers, key)
	}
}

func (x *index) forgetMarkers(before time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, m := range x.markers {
		if m.created.Before(before) {
			delete(x.markers, k)
		}
	}
}

func (x *index) isLeader() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l := x.leaderLocked()
	return l == "" || l == x.self
}

func (e *Engine) sweepLoop() {
	janitorAt := e.clock.Now().Add(e.cfg.LeaseTTL)
	// Leases are judged on every pass, and a pass runs at least this often.
	every := max(e.cfg.LeaseRefresh/4, 10*time.Millisecond)
	for {
		now := e.clock.Now()
		items, next := e.x.due(now, e.cfg.LeaseTTL)
		items = append(items, e.deadLeases(now)...)
		for _, it := range items {
			e.sweep(it)
		}
		if !now.Before(janitorAt) {
			e.janitor(now)
			janitorAt = now.Add(e.cfg.LeaseTTL)
		}
		if next.IsZero() || next.After(janitorAt) {
			next = janitorAt
		}
		if next.After(now.Add(every)) {
			next = now.Add(every)
		}
		if !e.sleep(next.Sub(e.clock.Now()), e.kicks.sweep) {
			return
		}
	}
}

func (e *Engine) sweepCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.cfg.LeaseTTL)
}

// sweep deletes one due key. The node that wins a lease's deletion also
// deletes that node's stale sessions, which changes no status: they stopped
// counting with the lease.
//
// The delete waits at most half a lease refresh, and a failed one is tried
// again an eighth of one later, as lease refreshes are: a delete sent while
// the stream elects a leader gets no answer at all, and waiting for one
// only delays the next, which may reach the new leader (a dead leader's
// users went offline up to a lease TTL after the election).
func (e *Engine) sweep(it sweepItem) {
	actx, acancel := context.WithTimeout(context.Background(), e.cfg.LeaseRefresh/2)
	_, err := e.deleteKey(actx, it.key, it.rev)
	acancel()
	switch {
	case err == nil:
		if it.kind == kindLease {
			e.log.Info("presence: a node is gone: its lease is deleted", zap.String("dead", it.node))
			e.counts.nodesExpired.Add(1)
			ctx, cancel := e.sweepCtx()
			e.deleteStale(ctx, e.x.staleSessions(it.node))
			cancel()
		}
	case isWrongSeq(err):
	default:
		e.log.Warn("presence: sweep failed", zap.String("key", it.key), zap.Error(err))
		e.x.retry(it, e.clock.Now().Add(e.cfg.LeaseRefresh/8))
	}
}

func (e *Engine) deleteStale(ctx context.Context, items []sweepItem) {
	for _, it := range items {
		if _, err := e.deleteKey(ctx, it.key, it.rev); err != nil && !isWrongSeq(err) {
			e.log.Warn("presence: deleting stale session failed", zap.String("key", it.key), zap.Error(err))
			return
		}
	}
}

// janitor runs on the leader every LeaseTTL: it deletes sessions that no
// longer count (left behind by a node that died while deleting another's)
// and purges old delete markers.
func (e *Engine) janitor(now time.Time) {
	if !e.x.isLeader() {
		// Only the leader purges; the others just let go of what it has
		// long purged.
		e.x.forgetMarkers(now.Add(-2 * markerRetention))
		return
	}
	ctx, cancel := e.sweepCtx()
	defer cancel()
	e.deleteStale(ctx, e.x.staleSessions(""))
	st, err := e.cfg.JetStream.Stream(ctx, streamName(e.cfg.Bucket))
	if err != nil {
		return
	}
	markers := e.x.oldMarkers(now.Add(-markerRetention), markerPurgeBatch)
	if len(markers) == 0 {
		return
	}
	// Resumes from before the newest marker purged cannot be derived from
	// the stream any more: say so first (see index.changesSince).
	var floor uint64
	for _, m := range markers {
		floor = max(floor, m.rev)
	}
	if _, err := e.bucket().Put(ctx, keyPurged, strconv.AppendUint(nil, floor, 10)); err != nil {
		e.log.Warn("presence: recording the purge floor failed", zap.Error(err))
		return
	}
	for _, m := range markers {
		// Only messages below the marker's successor go: a newer value of
		// the key, if one was written meanwhile, stays.
		err := st.Purge(ctx, jetstream.WithPurgeSubject(subjectOf(e.cfg.Bucket, m.key)), jetstream.WithPurgeSequence(m.rev+1))
		if err != nil {
			e.log.Warn("presence: purging marker failed", zap.String("key", m.key), zap.Error(err))
			return
		}
		e.x.forgetMarker(m.key, m.rev)
	}
}
