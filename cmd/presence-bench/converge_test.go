package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

// The scanner must read what the server's encoders write, and the same
// members written otherwise.
func TestEachEntry(t *testing.T) {
	type member struct {
		user    string
		present bool
		rev     uint64
	}
	scan := func(b []byte) []member {
		var got []member
		eachEntry(b, true, func(e entry) { got = append(got, member{string(e.user), e.present(), e.rev}) })
		return got
	}
	delta := protocol.AppendDelta(nil, protocol.Delta{Group: "g1", Rev: 99, Online: 2, Total: 3, Changes: []protocol.Member{
		{User: "pb-u1", Status: protocol.StatusOnline, Since: 1, Rev: 90},
		{User: "pb-u2", Status: protocol.StatusBusy, Text: `{"user":"pb-u9","status":"offline"}`, Since: 2, Rev: 91},
		{User: "pb-u3", Status: protocol.StatusOffline, Since: 3, LastSeen: 3, Rev: 92},
		{User: "pb-u4", Status: protocol.StatusAway, Text: `x,"removed":true}`, Since: 4, Rev: 93},
		{User: "pb-u5", Status: protocol.StatusOnline, Since: 5, Rev: 99, Removed: true},
		{User: "pb-u6", Status: "dnd", Since: 6, Rev: 99},
	}})
	want := []member{{"pb-u1", true, 90}, {"pb-u2", true, 91}, {"pb-u3", false, 92}, {"pb-u4", true, 93}, {"pb-u5", false, 99}, {"pb-u6", true, 99}}
	if got := scan(delta); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delta: got %v, want %v\n%s", got, want, delta)
	}
	snap := protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: 1, Group: "g1", Rev: 7, Epoch: `"changes":[`, Online: 2, Total: 3},
		[]protocol.Member{{User: "a", Status: protocol.StatusOnline, Since: 1}, {User: "b", Status: protocol.StatusOffline, Since: 1}})
	if got, want := scan(snap), []member{{"a", true, 0}, {"b", false, 0}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("snapshot: got %v, want %v\n%s", got, want, snap)
	}
	resumed := protocol.AppendResumed(nil, protocol.Resumed{ID: 1, Group: "g1", Rev: 12, Epoch: "e", Changes: []protocol.Member{
		{User: "c", Status: protocol.StatusAway, Rev: 12}}})
	if got, want := scan(resumed), []member{{"c", true, 12}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed: got %v, want %v", got, want)
	}
	if got := scan(protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: 1, Group: "g"}, nil)); len(got) != 0 {
		t.Fatalf("empty snapshot: %v", got)
	}
	// Written otherwise: other field orders, spaces, unknown fields with
	// nested values, escapes that end in a backslash.
	other := []byte(` { "op" : "delta", "group":"g\"1", "extra": {"changes":[{"user":"no"}]},
		"changes" : [ {"rev": 5, "text": "a\"b\\", "user":"x", "status":"away", "more": {"k": [1, "]}"]}} ,
		{"user":"y","status":"offline","removed":false}, {"status":"busy","user":"z","removed":true,"rev":7} ] }`)
	if got, want := scan(other), []member{{"x", true, 5}, {"y", false, 0}, {"z", false, 7}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("written otherwise: got %v, want %v", got, want)
	}
	// What it cannot read ends the scan, after the entries before it.
	if got, want := scan([]byte(`{"changes":[{"user":"x","status":"away"},{"user":"y",`)), []member{{"x", true, 0}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cut short: got %v, want %v", got, want)
	}
}

func TestUserIndex(t *testing.T) {
	for id, want := range map[string]int{"pb-u0": 0, "pb-u123": 123, "pb-u": -1, "pb-ux": -1, "pb-g1": -1, "qb-u1": -1, "pb-u1234567890": -1} {
		got, ok := userIndex("pb-u", []byte(id))
		if (want < 0) == ok || (ok && got != want) {
			t.Errorf("%s: %d %v, want %d", id, got, ok, want)
		}
	}
}

// TestTrackConvergence feeds one worker's connection the frames of a
// group of 70 coming online (the second of two groups, so that member
// ranks are offset) and checks when it counts as converged.
func TestTrackConvergence(t *testing.T) {
	p, err := newPlan(Topology{Prefix: "pb-", Groups: []GroupSpec{{2, 70}}, Conns: 140})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{plan: p, cc: &connectCommand{At: time.Now().UnixNano()}, closed: map[string]int{}}
	w.conns = []*subConn{{idx: 70, group: p.groupID(1)}, {idx: 71, group: p.groupID(1)}}
	w.startConverge()
	c := w.conns[0]
	if c.conv == nil || c.conv.base != 70 || c.conv.size != 70 || w.convPending.Load() != 2 {
		t.Fatalf("state %+v, pending %d", c.conv, w.convPending.Load())
	}
	members := func(from, to int, st protocol.Status, rev uint64) []protocol.Member {
		var out []protocol.Member
		for u := from; u < to; u++ {
			m := protocol.Member{User: p.userID(u), Status: st, Since: 1}
			if rev > 0 {
				m.Rev = rev + uint64(u)
			}
			out = append(out, m)
		}
		return out
	}
	frame := func(b []byte) {
		// As read() and subscribe1 do: track, then move the revision.
		w.handle(c, b)
	}
	// The snapshot: 60 of 70 present, and a user of the other group.
	snap := protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: 1, Group: c.group, Rev: 1000},
		append(members(70, 130, protocol.StatusOnline, 0), members(5, 6, protocol.StatusOnline, 0)...))
	w.track(c, snap, protocol.OpSnapshot)
	c.rev = 1000
	if c.conv.count != 60 {
		t.Fatalf("after snapshot: %d present", c.conv.count)
	}
	// A stale delta (rev not above the snapshot's) changes nothing.
	frame(protocol.AppendDelta(nil, protocol.Delta{Group: c.group, Rev: 999, Changes: members(130, 140, protocol.StatusOnline, 800)}))
	// Stale changes within a new delta are skipped; a member going
	// offline, away and removed; others coming online.
	frame(protocol.AppendDelta(nil, protocol.Delta{Group: c.group, Rev: 1200, Changes: append(append(
		members(70, 71, protocol.StatusOffline, 1100),  // u70 offline at rev 1170
		members(71, 72, protocol.StatusAway, 1100)...), // away counts as present
		append(members(72, 73, protocol.StatusOnline, 1100), members(130, 135, protocol.StatusOnline, 800)...)...)}))
	if c.conv.count != 59 || c.conv.at.Load() != 0 {
		t.Fatalf("after deltas: %d present", c.conv.count)
	}
	frame(protocol.AppendDelta(nil, protocol.Delta{Group: c.group, Rev: 1300, Changes: members(130, 140, protocol.StatusBusy, 1100)}))
	if c.conv.count != 69 || c.conv.at.Load() != 0 || c.conv.seen.Load() != 69 {
		t.Fatalf("one short: %d present", c.conv.count)
	}
	frame(protocol.AppendDelta(nil, protocol.Delta{Group: c.group, Rev: 1400, Changes: members(70, 71, protocol.StatusOnline, 1300)}))
	if c.conv.count != 70 || c.conv.at.Load() == 0 || w.convPending.Load() != 1 {
		t.Fatalf("all present: %d present, at %d, pending %d", c.conv.count, c.conv.at.Load(), w.convPending.Load())
	}
	at := c.conv.at.Load()
	// Leaving and coming back does not move the convergence time.
	frame(protocol.AppendDelta(nil, protocol.Delta{Group: c.group, Rev: 1500, Changes: members(80, 81, protocol.StatusOnline, 1410)}))
	frame(protocol.AppendDelta(nil, protocol.Delta{Group: c.group, Rev: 1600, Changes: []protocol.Member{{User: p.userID(80), Status: protocol.StatusOffline, Rev: 1600, Removed: true}}}))
	frame(protocol.AppendDelta(nil, protocol.Delta{Group: c.group, Rev: 1700, Changes: members(80, 81, protocol.StatusOnline, 1610)}))
	if c.conv.count != 70 || c.conv.at.Load() != at {
		t.Fatalf("after a flap: %d present, at %d (was %d)", c.conv.count, c.conv.at.Load(), at)
	}
	// The other connection ends without converging: the wait is over.
	w.settle(w.conns[1])
	w.settle(w.conns[1])
	select {
	case <-w.convDone:
	default:
		t.Fatal("convDone still open")
	}
	r := w.awaitConverge(&convergeCommand{Deadline: time.Now().Add(time.Minute).UnixNano()})
	if r.Tracked != 2 || r.Converged != 1 || r.NotConverged != 1 || r.Ended != 1 || r.FewestSeen != 0 || r.Times.Count() != 1 ||
		r.Times.Max() != time.Duration(at-w.cc.At) {
		t.Fatalf("reply %+v", r)
	}
	// Another worker's connections: one converged, one open with 12
	// members, one open with 5, one closed.
	w2 := &worker{plan: p, cc: &connectCommand{At: time.Now().UnixNano()}, closed: map[string]int{}}
	for i := range 4 {
		w2.conns = append(w2.conns, &subConn{idx: 72 + i, group: p.groupID(1)})
	}
	w2.startConverge()
	for i, n := range []int{70, 12, 5} {
		w2.track(w2.conns[i], protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: 1, Group: p.groupID(1), Rev: 10},
			members(70, 70+n, protocol.StatusOnline, 0)), protocol.OpSnapshot)
	}
	w2.settle(w2.conns[3])
	r2 := w2.awaitConverge(&convergeCommand{Deadline: time.Now().Add(50 * time.Millisecond).UnixNano()})
	if r2.Tracked != 4 || r2.Converged != 1 || r2.NotConverged != 3 || r2.Ended != 1 || r2.FewestSeen != 5 {
		t.Fatalf("reply of the second worker %+v", r2)
	}
	cv := mergeConverge([]reply{{Converge: r}, {Converge: r2}})
	if cv.Subscribers != 6 || cv.Converged != 2 || cv.NotConverged != 4 || cv.Ended != 2 || cv.FewestSeen != 5 || cv.Times.Count != 2 {
		t.Fatalf("merged %+v", cv)
	}
}

// BenchmarkEachEntry reads a delta of 100 online members as join10k's
// subscribers read every delta, for convergence and markers at once.
func BenchmarkEachEntry(b *testing.B) {
	changes := make([]protocol.Member, 100)
	for i := range changes {
		changes[i] = protocol.Member{User: fmt.Sprintf("pb-u%d", 1000+i), Status: protocol.StatusOnline,
			Since: 1765152000000 + int64(i), Rev: 123456 + uint64(i)}
	}
	frame := protocol.AppendDelta(nil, protocol.Delta{Group: "pb-g0", Rev: 123555, Online: 100, Total: 10000, Changes: changes})
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		eachEntry(frame, false, func(e entry) {
			if _, ok := marker(e.text); !ok && e.present() {
				n++
			}
		})
	}
	if n != 100*b.N {
		b.Fatalf("%d entries in %d scans", n, b.N)
	}
}
