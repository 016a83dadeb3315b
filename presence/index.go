package presence

import (
	"container/heap"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/protocol"
)

// entryOp is what a KV entry does to its key.
type entryOp uint8

const (
	opPut entryOp = iota
	opDelete
)

// entry is one event of the presence bucket's stream, in the order every
// node sees it.
type entry struct {
	op      entryOp
	key     string
	value   []byte
	rev     uint64
	created time.Time
}

// sessionEntry is a stored session or backend source.
type sessionEntry struct {
	key     string
	kind    keyKind
	user    *userState
	rec     sessionRecord
	rev     uint64
	created time.Time
}

// since is when the session's status began: carried over in the record, or
// the time this entry was stored.
func (s *sessionEntry) since() time.Time {
	if !s.rec.Since.IsZero() {
		return s.rec.Since
	}
	return s.created
}

type manualEntry struct {
	rec     manualRecord
	rev     uint64
	created time.Time
}

func (m *manualEntry) since() time.Time {
	if !m.rec.Since.IsZero() {
		return m.rec.Since
	}
	return m.created
}

type leaseEntry struct {
	rec     leaseRecord
	rev     uint64
	created time.Time
	// sAt is the stream time when this node applied the lease (see
	// streamNowLocked).
	sAt time.Duration
}

// marker remembers a deleted session or source key until its delete marker
// is purged from the stream.
type marker struct {
	rev     uint64
	created time.Time
}

// userState is everything the index knows about one user.
type userState struct {
	id       string
	sessions []*sessionEntry
	manual   *manualEntry
	groups   []*group

	// Derived from the stored entries (see aggregate).
	status protocol.Status
	text   string
	since  time.Time

	// Tracked as changes are applied.
	rev      uint64    // last change of status, text or since
	changed  time.Time // last status change
	lastSeen time.Time // when the user was last seen going offline
	goneAt   time.Time // scratch: a session of the user was deleted at
	touched  bool      // scratch: queued for recomputation
}

// index is the in-memory presence state, derived from the presence bucket's
// stream. Every node applies the same entries in the same order, and every
// derived status is a pure function of the stored entries, so all nodes
// agree at each revision. It also holds the subscriptions (see fanout.go).
type index struct {
	self     string // node id: the change feed is published by the leader
	clock    Clock
	log      *zap.Logger
	coalesce time.Duration
	history  int

	mu sync.RWMutex
	// mu guards the following fields.
	epoch        string
	rev          uint64
	loaded       bool
	users        map[string]*userState
	groups       map[string]*group
	sessions     map[string]*sessionEntry // s. and b. keys
	leases       map[string]*leaseEntry   // by node
	nodeSessions map[string]map[*sessionEntry]struct{}
	tally        sessionTally
	markers      map[string]marker
	// gone remembers, per group, the members removed and the revision of
	// each removal, while the stream holds its delete marker: a resume
	// learns from it who left (see changesSince).
	gone map[string]map[string]uint64
	// purged is the revision at or below which delete markers of sessions
	// may have been purged: deltas after a revision below it cannot be
	// derived from the stream any more.
	purged uint64
	// Stream time counts only while the stream takes writes: the gap
	// between two applied entries counts up to gapCap (LeaseRefresh),
	// since every live node writes at least that often. A lease's age is
	// measured in it, so that a leader election or a partition does not
	// count against anyone's lease.
	gapCap     time.Duration
	activeAt   time.Time     // clock time of the last applied entry
	active     time.Duration // stream time at that entry
	onEpoch    func(string)  // told when the epoch key changes or goes
	expiry     expiryHeap
	expiryKick func() // told when an item is due before sweepArmed
	sweepArmed time.Time
	touched    []*userState
	scratch    []contribution
	changes    []Change
	waiters    revWaiters // waits for revisions not yet applied
	fan        fanout
	uw         userWatch // see userwatch.go
}

func newIndex(self string, clock Clock, log *zap.Logger, coalesce time.Duration, history int) *index {
	x := &index{
		self:         self,
		clock:        clock,
		log:          log,
		coalesce:     coalesce,
		history:      history,
		users:        make(map[string]*userState),
		groups:       make(map[string]*group),
		sessions:     make(map[string]*sessionEntry),
		leases:       make(map[string]*leaseEntry),
		nodeSessions: make(map[string]map[*sessionEntry]struct{}),
		tally:        newSessionTally(),
		markers:      make(map[string]marker),
		gone:         make(map[string]map[string]uint64),
		gapCap:       DefaultLeaseRefresh,
	}
	x.fan.init()
	return x
}

// apply applies one entry of the stream.
func (x *index) apply(en entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.applyLocked(en)
}

func (x *index) applyLocked(en entry) {
	if en.rev <= x.rev {
		return // already applied (a watch that resumed)
	}
	x.rev = en.rev
	x.fan.stats.events.Add(1)
	x.tickLocked()
	kind, a, b := parseKey(en.key)
	switch kind {
	case kindEpoch:
		if x.loaded && x.onEpoch != nil {
			v := ""
			if en.op == opPut {
				v = string(en.value)
			}
			if v != x.epoch {
				x.onEpoch(v)
			}
		}
	case kindPurged:
		if n, err := strconv.ParseUint(string(en.value), 10, 64); err == nil && en.op == opPut {
			x.purged = max(x.purged, n)
		}
	case kindSession, kindSource:
		if en.op == opPut {
			var rec sessionRecord
			if err := decodeSessionRecord(en.value, &rec); err == nil && rec.Status.Valid() {
				x.putSession(en, kind, a, b, rec)
				break
			}
			x.log.Warn("presence: bad session value, treated as deleted", zap.String("key", en.key))
		}
		x.deleteSession(en, a)
	case kindManual:
		if en.op == opPut {
			var rec manualRecord
			if err := json.Unmarshal(en.value, &rec); err == nil {
				x.putManual(en, a, rec)
				break
			}
			x.log.Warn("presence: bad manual value, treated as deleted", zap.String("key", en.key))
		}
		x.deleteManual(a)
	case kindLease:
		if en.op == opPut {
			var rec leaseRecord
			if err := json.Unmarshal(en.value, &rec); err == nil {
				x.putLease(en, a, rec)
				break
			}
			x.log.Warn("presence: bad lease value, treated as deleted", zap.String("key", en.key))
		}
		x.deleteLease(a)
	case kindMember:
		if en.op == opPut {
			x.addMember(en, a, b)
		} else {
			x.removeMember(en, a, b)
		}
	}
	feed := x.loaded && x.self != "" && x.leaderLocked() == x.self
	for _, u := range x.touched {
		u.touched = false
		x.recompute(u, en, feed)
	}
	clear(x.touched)
	x.touched = x.touched[:0]
	x.afterApplyLocked()
	x.wakeLocked()
}

func (x *index) user(id string) *userState {
	u := x.users[id]
	if u == nil {
		u = &userState{id: id, status: protocol.StatusOffline}
		x.users[id] = u
	}
	return u
}

func (x *index) touch(u *userState) {
	if !u.touched {
		u.touched = true
		x.touched = append(x.touched, u)
	}
}

func (x *index) putSession(en entry, kind keyKind, user, id string, rec sessionRecord) {
	s := x.sessions[en.key]
	if s == nil {
		u := x.user(user)
		s = &sessionEntry{key: en.key, kind: kind, user: u}
		x.sessions[en.key] = s
		u.sessions = append(u.sessions, s)
		delete(x.markers, en.key)
	} else {
		x.tally.add(s, -1)
		if kind == kindSession && s.rec.Node != rec.Node {
			x.unlinkNode(s)
		}
	}
	rec.User, rec.Session = user, id
	if kind == kindSource {
		rec.Node, rec.Inst, rec.Auto = "", "", false
	}
	s.rec, s.rev, s.created = rec, en.rev, en.created
	x.tally.add(s, 1)
	if kind == kindSession {
		ns := x.nodeSessions[rec.Node]
		if ns == nil {
			ns = make(map[*sessionEntry]struct{})
			x.nodeSessions[rec.Node] = ns
		}
		ns[s] = struct{}{}
	}
	if !rec.Expires.IsZero() {
		x.addExpiry(rec.Expires, en.key, en.rev)
	}
	x.touch(s.user)
}

func (x *index) deleteSession(en entry, user string) {
	x.markers[en.key] = marker{rev: en.rev, created: en.created}
	s := x.sessions[en.key]
	if s == nil {
		if u := x.users[user]; u != nil || !x.loaded {
			// A delete marker seen while loading still tells when the
			// user was last around.
			u = x.user(user)
			u.goneAt = en.created
			x.touch(u)
		}
		return
	}
	delete(x.sessions, en.key)
	x.tally.add(s, -1)
	x.unlinkNode(s)
	u := s.user
	if i := slices.Index(u.sessions, s); i >= 0 {
		u.sessions = slices.Delete(u.sessions, i, i+1)
	}
	u.goneAt = en.created
	x.touch(u)
}

func (x *index) unlinkNode(s *sessionEntry) {
	if s.kind != kindSession {
		return
	}
	if ns := x.nodeSessions[s.rec.Node]; ns != nil {
		delete(ns, s)
		if len(ns) == 0 {
			delete(x.nodeSessions, s.rec.Node)
		}
	}
}

func (x *index) putManual(en entry, user string, rec manualRecord) {
	u := x.user(user)
	u.manual = &manualEntry{rec: rec, rev: en.rev, created: en.created}
	if !rec.Expires.IsZero() {
		x.addExpiry(rec.Expires, en.key, en.rev)
	}
	x.touch(u)
}

func (x *index) deleteManual(user string) {
	if u := x.users[user]; u != nil && u.manual != nil {
		u.manual = nil
		x.touch(u)
	}
}

func (x *index) putLease(en entry, node string, rec leaseRecord) {
	old := x.leases[node]
	rec.Node = node
	x.leases[node] = &leaseEntry{rec: rec, rev: en.rev, created: en.created, sAt: x.active}
	if old == nil || old.rec.Inst != rec.Inst {
		x.touchNode(node)
	}
}

func (x *index) deleteLease(node string) {
	if _, ok := x.leases[node]; !ok {
		return
	}
	delete(x.leases, node)
	x.touchNode(node)
}

// touchNode queues every user with a session on node: a lease appeared or
// went away, so whether those sessions count may have changed.
func (x *index) touchNode(node string) {
	for s := range x.nodeSessions[node] {
		x.touch(s.user)
	}
}

func (x *index) addExpiry(at time.Time, key string, rev uint64) {
	x.expiry.add(expiryItem{at: at, key: key, rev: rev})
	if x.expiryKick != nil && (x.sweepArmed.IsZero() || at.Before(x.sweepArmed)) {
		x.sweepArmed = at
		x.expiryKick()
	}
}

// counted reports whether a stored session takes part in its user's status:
// a backend source always does; a session does while it lingers (grace
// period) or while its node's lease carries the session's incarnation. So
// the sessions of a node whose lease lapsed stop counting at the revision of
// the lease's deletion, on every node, and a late write from that node
// changes nothing.
func (x *index) counted(s *sessionEntry) bool {
	if alwaysCounts(s) {
		return true
	}
	l := x.leases[s.rec.Node]
	return l != nil && l.rec.Inst == s.rec.Inst
}

// alwaysCounts reports a backend source or an expiring session (in its
// grace), which count whatever the leases.
func alwaysCounts(s *sessionEntry) bool { return s.kind == kindSource || !s.rec.Expires.IsZero() }

// sessionTally counts the sessions of the index by what decides whether
// they count (see counted), so that the number that count is known without
// a look at each one: metrics read it at every scrape, under the index's
// lock, and 100,000 sessions took 17 ms to go through.
type sessionTally struct {
	always int              // sources and expiring sessions
	byInst map[nodeInst]int // the other sessions, by node and incarnation
}

type nodeInst struct{ node, inst string }

func newSessionTally() sessionTally { return sessionTally{byInst: make(map[nodeInst]int)} }

// add adds d to the tally of s as its record is now.
func (t *sessionTally) add(s *sessionEntry, d int) {
	if alwaysCounts(s) {
		t.always += d
		return
	}
	k := nodeInst{s.rec.Node, s.rec.Inst}
	if n := t.byInst[k] + d; n != 0 {
		t.byInst[k] = n
	} else {
		delete(t.byInst, k)
	}
}

// counted is the number of sessions that count with leases as they are.
func (t *sessionTally) counted(leases map[string]*leaseEntry) int {
	n := t.always
	for node, l := range leases {
		n += t.byInst[nodeInst{node, l.rec.Inst}]
	}
	return n
}

func (x *index) derive(u *userState) (protocol.Status, string, time.Time) {
	cs := x.scratch[:0]
	for _, s := range u.sessions {
		if x.counted(s) {
			cs = append(cs, contribution{status: s.rec.Status, text: s.rec.Text, since: s.since(), rev: s.rev})
		}
	}
	x.scratch = cs
	var m *manualStatus
	if u.manual != nil {
		m = &manualStatus{status: u.manual.rec.Status, text: u.manual.rec.Text, since: u.manual.since()}
	}
	return aggregate(cs, m)
}

// recompute derives u's status again and, if it changed, records the
// deltas of u's groups at en's revision.
func (x *index) recompute(u *userState, en entry, feed bool) {
	status, text, since := x.derive(u)
	gone := u.goneAt
	u.goneAt = time.Time{}
	if status == u.status && text == u.text && since.Equal(u.since) {
		if status == protocol.StatusOffline && gone.After(u.lastSeen) {
			u.lastSeen = gone
		}
		return
	}
	was, now := u.status.Online(), status.Online()
	statusChanged, textChanged := status != u.status, text != u.text
	u.status, u.text, u.since, u.rev = status, text, since, en.rev
	if statusChanged {
		u.changed = en.created
		if was && !now {
			u.lastSeen = en.created
		}
	}
	if was || now {
		d := Delta{User: u.id, Status: status, Text: text, Since: since, Rev: en.rev}
		for _, g := range u.groups {
			if was != now {
				if now {
					g.online++
				} else {
					g.online--
				}
				g.countsChanged = true
			}
			x.emit(g, d)
		}
	}
	if statusChanged || textChanged {
		x.fan.stats.changes.Add(1)
		c := Change{User: u.id, Status: status, Text: text, Since: since, Rev: en.rev}
		if feed {
			x.changes = append(x.changes, c)
		}
		if x.loaded {
			x.userChangedLocked(c)
		}
	}
}

// leaderLocked is the live node with the smallest id, "" if none.
func (x *index) leaderLocked() string {
	leader := ""
	for n := range x.leases {
		if leader == "" || n < leader {
			leader = n
		}
	}
	return leader
}

// markLoaded ends the initial load: from now on changes are deltas.
func (x *index) markLoaded() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loaded {
		return
	}
	x.loaded = true
	for _, g := range x.groups {
		slices.SortFunc(g.sorted, func(a, b *userState) int { return strings.Compare(a.id, b.id) })
		g.hist.reset(x.rev)
		g.hist.max = x.history
		g.countsChanged = false
	}
	x.changes = x.changes[:0]
}

// takeChanges hands the change feed collected since the last call.
func (x *index) takeChanges() []Change {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.changes) == 0 {
		return nil
	}
	c := x.changes
	x.changes = nil
	return c
}

// closedCh is a channel that is always closed.
var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// revWaiter is one wait for the index to reach a revision (see waitFor).
type revWaiter struct {
	rev uint64
	ch  chan struct{} // closed once rev is applied
	i   int           // the index in index.waiters; -1 once out of it
}

// reachedWait is every wait for a revision already applied.
var reachedWait = &revWaiter{ch: closedCh, i: -1}

// revWaiters is a min-heap of waits by revision (container/heap).
type revWaiters []*revWaiter

func (h revWaiters) Len() int           { return len(h) }
func (h revWaiters) Less(i, j int) bool { return h[i].rev < h[j].rev }
func (h revWaiters) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *revWaiters) Push(v any) {
	w := v.(*revWaiter)
	w.i = len(*h)
	*h = append(*h, w)
}
func (h *revWaiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.i = -1
	return w
}

// waitFor returns a wait whose channel is closed once revision rev has been
// applied (already closed when it has been): each wait ends once, at its
// own revision. A caller that waits on it never misses an entry applied in
// between; one that gives up calls stopWaiting.
func (x *index) waitFor(rev uint64) *revWaiter {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rev >= rev {
		return reachedWait
	}
	w := &revWaiter{rev: rev, ch: make(chan struct{})}
	heap.Push(&x.waiters, w)
	return w
}

// stopWaiting drops a wait that was given up.
func (x *index) stopWaiting(w *revWaiter) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if w.i >= 0 {
		heap.Remove(&x.waiters, w.i)
	}
}

// wakeLocked ends the waits for the revisions applied.
func (x *index) wakeLocked() {
	for len(x.waiters) > 0 && x.waiters[0].rev <= x.rev {
		close(heap.Pop(&x.waiters).(*revWaiter).ch)
	}
}
