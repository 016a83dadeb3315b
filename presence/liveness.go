package presence

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Whether a node is alive is told by two signals that must agree before
// anyone's users go offline:
//
//   - Its lease in the stream, refreshed every LeaseRefresh. A lease's age
//     is measured in stream time, which advances only while the stream
//     takes writes: the gap between two applied entries counts up to
//     LeaseRefresh, the longest a live node stays silent. A leader
//     election or a partition therefore freezes every lease, and once the
//     stream takes writes again nobody's lease is overdue for it.
//   - Its heartbeats, published on core NATS every LeaseRefresh/4 to
//     SubjectHeartbeat + node. Core NATS does not wait for a stream leader,
//     so a live node's heartbeats go on through an election while a dead
//     node's stop at once.
//
// A node's lease is deleted once it is overdue by its TTL in stream time,
// or once this node heard six of its own heartbeats (LeaseRefresh·3/2)
// since that node's last one, while its lease also missed a refresh in
// stream time. The second rule is the fast
// one: a killed node's users go offline a few seconds after its death, or
// as soon as the stream has a leader again, instead of a whole TTL after
// an election that outlasted it.

// SubjectHeartbeat + <node> carries a node's heartbeats (its incarnation).
const SubjectHeartbeat = "presenced.heartbeat."

// tickLocked advances stream time to now: an entry is being applied.
func (x *index) tickLocked() {
	now := x.clock.Now()
	if !x.activeAt.IsZero() {
		if gap := now.Sub(x.activeAt); gap > 0 {
			x.active += min(gap, x.gapCap)
		}
	}
	x.activeAt = now
}

// streamNowLocked is the stream time at now: that of the last applied
// entry, plus the time since, up to gapCap.
func (x *index) streamNowLocked(now time.Time) time.Duration {
	if x.activeAt.IsZero() {
		return 0
	}
	return x.active + min(max(now.Sub(x.activeAt), 0), x.gapCap)
}

// leaseView is what the sweeper needs to judge a lease.
type leaseView struct {
	node, key string
	rev       uint64
	// age is in stream time; ttl is the owner's LeaseTTL.
	age, ttl time.Duration
}

// otherLeases returns the leases of the other nodes, aged at now.
func (x *index) otherLeases(now time.Time) []leaseView {
	x.mu.RLock()
	defer x.mu.RUnlock()
	sNow := x.streamNowLocked(now)
	out := make([]leaseView, 0, len(x.leases))
	for node, l := range x.leases {
		if node == x.self {
			continue
		}
		ttl := l.rec.Expires.Sub(l.rec.Refreshed)
		if ttl <= 0 {
			ttl = DefaultLeaseTTL
		}
		out = append(out, leaseView{node: node, key: leaseKey(node), rev: l.rev, age: sNow - l.sAt, ttl: ttl})
	}
	return out
}

// liveness tracks the heartbeats this node hears. Silence is counted in
// this node's own heartbeats heard since another node's last one, not in
// clock time: a node that does not hear itself (its subscription broke, its
// process was paused) judges nobody, and a clock that jumps counts once.
type liveness struct {
	mu sync.Mutex
	// mu guards the following fields.
	self  string
	own   uint64            // own heartbeats heard so far
	heard map[string]uint64 // node → own when its last heartbeat arrived
}

func (l *liveness) init(self string) {
	l.mu.Lock()
	l.self, l.heard = self, make(map[string]uint64)
	l.mu.Unlock()
}

func (l *liveness) beat(node string) {
	l.mu.Lock()
	if node == l.self {
		l.own++
	}
	l.heard[node] = l.own
	l.mu.Unlock()
}

// silent is how many of this node's heartbeats it heard since node's last
// one (or since it first asked about node).
func (l *liveness) silent(node string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, ok := l.heard[node]
	if !ok {
		l.heard[node] = l.own
		return 0
	}
	return l.own - last
}

// majority reports whether this node hears a majority of the nodes it
// knows (the lease holders, itself included).
func (l *liveness) majority(known []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	heard, all := 1, 1
	for _, n := range known {
		if n == l.self {
			continue
		}
		all++
		if last, ok := l.heard[n]; ok && l.own-last < silentBeats {
			heard++
		}
	}
	return 2*heard > all
}

// silentBeats is how many of its own heartbeats a node hears before it
// counts another node as silent: LeaseRefresh·3/2 of time.
const silentBeats = 6

// listenHeartbeats subscribes to every node's heartbeats.
func (e *Engine) listenHeartbeats() (*nats.Subscription, error) {
	e.live.init(e.cfg.NodeID)
	return e.cfg.Conn.Subscribe(SubjectHeartbeat+"*", func(m *nats.Msg) {
		e.live.beat(m.Subject[len(SubjectHeartbeat):])
	})
}

// heartbeatLoop publishes this node's heartbeat every LeaseRefresh/4.
func (e *Engine) heartbeatLoop() {
	every := max(e.cfg.LeaseRefresh/4, 10*time.Millisecond)
	subject := SubjectHeartbeat + e.cfg.NodeID
	for {
		if err := e.cfg.Conn.Publish(subject, []byte(e.inst)); err != nil {
			e.log.Debug("presence: heartbeat not sent", zap.Error(err))
		}
		if !e.sleep(every, nil) {
			return
		}
	}
}

// deadLeases returns the leases of other nodes that should be deleted at
// now (see the rules above).
func (e *Engine) deadLeases(now time.Time) []sweepItem {
	var out []sweepItem
	for _, l := range e.x.otherLeases(now) {
		overdue := l.age >= l.ttl
		silent := e.live.silent(l.node) >= silentBeats && l.age >= e.cfg.LeaseRefresh+e.cfg.LeaseRefresh/4
		if overdue || silent {
			out = append(out, sweepItem{key: l.key, rev: l.rev, kind: kindLease, node: l.node})
		}
	}
	return out
}
