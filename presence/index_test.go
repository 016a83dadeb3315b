package presence

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// feeder applies hand-made stream entries to an index, numbering them.
type feeder struct {
	t   testing.TB
	x   *index
	rev uint64
	now time.Time
}

func newFeeder(t testing.TB, coalesce time.Duration, history int) *feeder {
	x := newIndex("", SystemClock{}, zaptest.NewLogger(t), coalesce, history)
	t.Cleanup(x.close)
	return &feeder{t: t, x: x, now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (f *feeder) put(key string, v any) uint64 {
	f.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	f.rev++
	f.now = f.now.Add(time.Second)
	f.x.apply(entry{op: opPut, key: key, value: b, rev: f.rev, created: f.now})
	return f.rev
}

func (f *feeder) del(key string) uint64 {
	f.rev++
	f.now = f.now.Add(time.Second)
	f.x.apply(entry{op: opDelete, key: key, rev: f.rev, created: f.now})
	return f.rev
}

func (f *feeder) lease(node, inst string) uint64 {
	return f.put(leaseKey(node), leaseRecord{Node: node, Inst: inst, Expires: f.now.Add(time.Hour)})
}

func (f *feeder) session(user, id, node, inst string, st protocol.Status) uint64 {
	return f.put(sessionKey(user, id), sessionRecord{User: user, Session: id, Node: node, Inst: inst, Status: st})
}

func (f *feeder) member(g, u string) uint64 {
	return f.put(membership.MemberKey(g, u), membership.Member{GroupID: g, UserID: u, Role: membership.RoleMember})
}

func (f *feeder) status(user string) protocol.Status { return f.x.status(user).Status }

func (f *feeder) deltas(g string) []Delta {
	f.x.mu.RLock()
	defer f.x.mu.RUnlock()
	gr := f.x.groups[g]
	if gr == nil {
		return nil
	}
	d, _ := gr.hist.after(gr.hist.floor)
	return d
}

func TestIndexLeaseDecidesWhetherSessionsCount(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.x.markLoaded()
	f.session("u1", "s1", "n1", "i1", protocol.StatusOnline)
	if got := f.status("u1"); got != protocol.StatusOffline {
		t.Fatalf("session without lease: %s, want offline", got)
	}
	f.lease("n1", "i1")
	if got := f.status("u1"); got != protocol.StatusOnline {
		t.Fatalf("after lease: %s, want online", got)
	}
	// A lingering session survives its node's lease.
	f.put(sessionKey("u2", "s2"), sessionRecord{Node: "n1", Inst: "i1", Status: protocol.StatusAway, Expires: f.now.Add(time.Minute)})
	f.del(leaseKey("n1"))
	if got := f.status("u1"); got != protocol.StatusOffline {
		t.Fatalf("after lease deletion: %s, want offline", got)
	}
	if got := f.status("u2"); got != protocol.StatusAway {
		t.Fatalf("lingering session after lease deletion: %s, want away", got)
	}
	// A write from the dead node changes nothing.
	f.session("u3", "s3", "n1", "i1", protocol.StatusOnline)
	if got := f.status("u3"); got != protocol.StatusOffline {
		t.Fatalf("write after lease deletion: %s, want offline", got)
	}
	// A new incarnation of the node does not revive the old sessions.
	f.lease("n1", "i2")
	if got := f.status("u1"); got != protocol.StatusOffline {
		t.Fatalf("old incarnation's session under new lease: %s, want offline", got)
	}
	f.session("u1", "s4", "n1", "i2", protocol.StatusOnline)
	if got := f.status("u1"); got != protocol.StatusOnline {
		t.Fatalf("new incarnation's session: %s, want online", got)
	}
}

func TestIndexDeltas(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n1", "i1")
	f.member("g1", "u1")
	f.member("g1", "u2")
	f.x.markLoaded()

	r1 := f.session("u1", "s1", "n1", "i1", protocol.StatusOnline)
	r2 := f.session("u1", "s1", "n1", "i1", protocol.StatusAway)
	r3 := f.member("g1", "u3") // offline member: counts only
	r4 := f.session("u3", "s3", "n1", "i1", protocol.StatusOnline)
	r5 := f.del(membership.MemberKey("g1", "u3"))
	f.member("g1", "u1") // role change: nothing
	r6 := f.del(sessionKey("u1", "s1"))

	want := []Delta{
		{User: "u1", Status: protocol.StatusOnline, Rev: r1},
		{User: "u1", Status: protocol.StatusAway, Rev: r2},
		{User: "u3", Status: protocol.StatusOnline, Rev: r4},
		{User: "u3", Status: protocol.StatusOffline, Rev: r5, Removed: true},
		{User: "u1", Status: protocol.StatusOffline, Rev: r6},
	}
	got := f.deltas("g1")
	if len(got) != len(want) {
		t.Fatalf("deltas = %+v, want %d", got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.User != w.User || g.Status != w.Status || g.Rev != w.Rev || g.Removed != w.Removed {
			t.Errorf("delta %d = %+v, want %+v", i, g, w)
		}
	}
	c, ok := f.x.groupCount("g1")
	if !ok || c.Online != 0 || c.Total != 2 || c.Rev != r6 {
		t.Fatalf("count = %+v, want 0/2 at %d", c, r6)
	}
	_ = r3
}

func TestIndexSnapshotSortedAndSince(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n1", "i1")
	for _, u := range []string{"c", "a", "d", "b"} {
		f.member("g", u)
	}
	f.session("d", "s", "n1", "i1", protocol.StatusOnline)
	f.x.markLoaded()
	f.session("a", "s", "n1", "i1", protocol.StatusAway)
	f.member("g", "aa")
	f.session("aa", "s", "n1", "i1", protocol.StatusOnline)

	s := f.x.snapshot("g")
	var users []string
	for _, m := range s.Members {
		users = append(users, m.User)
		if m.Since.IsZero() {
			t.Errorf("member %s has no since", m.User)
		}
	}
	if !slices.Equal(users, []string{"a", "aa", "d"}) || s.Online != 3 || s.Total != 5 || s.Rev != f.rev {
		t.Fatalf("snapshot = %+v", s)
	}
	if got := f.x.whereNow("aa"); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("whereNow = %v", got)
	}
}

func TestIndexSinceCarriesOver(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n1", "i1")
	f.member("g", "u")
	f.x.markLoaded()
	f.session("u", "s1", "n1", "i1", protocol.StatusOnline)
	since := f.x.status("u").Since
	// A second session written with the user's since (as Connect does)
	// keeps it when the first one goes.
	f.put(sessionKey("u", "s2"), sessionRecord{Node: "n1", Inst: "i1", Status: protocol.StatusOnline, Since: since})
	n := len(f.deltas("g"))
	f.del(sessionKey("u", "s1"))
	if got := f.x.status("u"); got.Status != protocol.StatusOnline || !got.Since.Equal(since) {
		t.Fatalf("status = %+v, want online since %v", got, since)
	}
	if len(f.deltas("g")) != n {
		t.Fatalf("a reconnect produced deltas: %+v", f.deltas("g")[n:])
	}
}

func TestIndexManualAndLastSeen(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n1", "i1")
	f.x.markLoaded()
	f.put(manualKey("u"), manualRecord{Status: protocol.StatusBusy, Text: "focus"})
	if got := f.x.status("u"); got.Status != protocol.StatusOffline || got.Text != "focus" {
		t.Fatalf("manual without session = %+v", got)
	}
	f.session("u", "s", "n1", "i1", protocol.StatusOnline)
	if got := f.x.status("u"); got.Status != protocol.StatusBusy || got.Text != "focus" {
		t.Fatalf("manual with session = %+v", got)
	}
	f.del(manualKey("u"))
	if got := f.status("u"); got != protocol.StatusOnline {
		t.Fatalf("after manual cleared: %s", got)
	}
	r := f.del(sessionKey("u", "s"))
	got := f.x.status("u")
	if got.Status != protocol.StatusOffline || !got.LastSeen.Equal(f.now) || got.Rev != r {
		t.Fatalf("after last session = %+v, want last seen %v", got, f.now)
	}
	if cs := f.x.changedSince(f.now); len(cs) != 1 || cs[0].User != "u" {
		t.Fatalf("changedSince = %+v", cs)
	}
	if cs := f.x.changedSince(f.now.Add(time.Second)); len(cs) != 0 {
		t.Fatalf("changedSince later = %+v", cs)
	}
}

func TestIndexLoadEmitsNoDeltas(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n1", "i1")
	f.member("g", "u")
	f.session("u", "s", "n1", "i1", protocol.StatusOnline)
	f.x.markLoaded()
	if d := f.deltas("g"); len(d) != 0 {
		t.Fatalf("deltas during load: %+v", d)
	}
	if s := f.x.snapshot("g"); s.Online != 1 || len(s.Members) != 1 {
		t.Fatalf("snapshot after load = %+v", s)
	}
}

func TestHistoryWindow(t *testing.T) {
	h := history{max: 3}
	h.reset(10)
	if _, ok := h.after(9); ok {
		t.Fatal("resume below the floor accepted")
	}
	for r := uint64(11); r <= 15; r++ {
		h.push(Delta{User: "u", Rev: r})
	}
	if _, ok := h.after(11); ok {
		t.Fatal("resume from an evicted revision accepted")
	}
	d, ok := h.after(12)
	if !ok || len(d) != 3 || d[0].Rev != 13 || d[2].Rev != 15 {
		t.Fatalf("after(12) = %+v %v", d, ok)
	}
	if d, ok := h.after(15); !ok || len(d) != 0 {
		t.Fatalf("after(15) = %+v %v", d, ok)
	}
}

func TestValidIDMatchesMembership(t *testing.T) {
	for _, id := range []string{"", "a", "A-z_0", "a.b", "a b", "ä", "a>", "*", string(make([]byte, 64)),
		"x123456789012345678901234567890123456789012345678901234567890123",
		"x1234567890123456789012345678901234567890123456789012345678901234"} {
		if validID(id) != membership.ValidID(id) {
			t.Errorf("validID(%q) = %v, membership.ValidID says %v", id, validID(id), membership.ValidID(id))
		}
	}
}

// TestWaitForAfterApplied is the race of a waiter that reads the revision,
// and asks to wait for the next one after that one was applied: the wait
// must end at once, not block until a later entry (the test helpers
// waitUntil and waitStatus hung on it).
func TestWaitForAfterApplied(t *testing.T) {
	x := newIndex("n", SystemClock{}, zap.NewNop(), -1, 0)
	defer x.close()
	rev := x.currentRev()
	x.apply(entry{op: opPut, key: leaseKey("n"), value: []byte(`{"node":"n","inst":"i"}`), rev: rev + 1, created: time.Now()})
	w := x.waitFor(rev + 1) // the caller read rev before the entry came
	select {
	case <-w.ch:
	case <-time.After(time.Second):
		t.Fatal("a wait for a revision already applied did not end")
	}
}

// TestWaitWakesOnlyAtItsRevision: a wait for revision r ends when r is
// applied, not at every entry before it. Every connection waits for its
// own session's revision; with one channel closed at every entry, each of
// the thousands that wait in a connect storm woke, took the index's lock
// and waited again at each entry: 8.7 % of the server's CPU in a CPU profile of
// presence-bench --scenario idle19900.
func TestWaitWakesOnlyAtItsRevision(t *testing.T) {
	x := newIndex("n", SystemClock{}, zap.NewNop(), -1, 0)
	defer x.close()
	rev := x.currentRev()
	apply := func(r uint64) {
		x.apply(entry{op: opPut, key: leaseKey("n"), value: []byte(`{"node":"n","inst":"i"}`), rev: r, created: time.Now()})
	}
	w := x.waitFor(rev + 3)
	given := x.waitFor(rev + 2)
	x.stopWaiting(given)
	for r := rev + 1; r < rev+3; r++ {
		apply(r)
		select {
		case <-w.ch:
			t.Fatalf("the wait for revision %d ended at revision %d", rev+3, r)
		default:
		}
	}
	apply(rev + 3)
	select {
	case <-w.ch:
	case <-time.After(time.Second):
		t.Fatal("the wait did not end when its revision was applied")
	}
	if n := len(x.waiters); n != 0 {
		t.Fatalf("%d waits left behind", n)
	}
}
