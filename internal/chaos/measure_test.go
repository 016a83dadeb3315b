package chaos

import (
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

// These tests cover the judging logic without processes or namespaces; they
// run in the default go test.

func TestTimeline(t *testing.T) {
	t0 := time.Now()
	tl := &Timeline{marks: []mark{
		{at: t0, host: "n1", kind: markStart},
		{at: t0.Add(10 * time.Second), host: "n1", kind: markCut},
		{at: t0.Add(20 * time.Second), host: "n1", kind: markHeal},
		{at: t0.Add(30 * time.Second), host: "n1", kind: markDown},
	}}
	for _, tc := range []struct {
		at           time.Duration
		up, majority bool
	}{
		{-time.Second, false, false},
		{5 * time.Second, true, true},
		{15 * time.Second, true, false},
		{25 * time.Second, true, true},
		{35 * time.Second, false, false},
	} {
		at := t0.Add(tc.at)
		if got := tl.Up("n1", at); got != tc.up {
			t.Errorf("Up at %v = %v, want %v", tc.at, got, tc.up)
		}
		if got := tl.Majority("n1", at); got != tc.majority {
			t.Errorf("Majority at %v = %v, want %v", tc.at, got, tc.majority)
		}
	}
}

func TestPresentThrough(t *testing.T) {
	t0 := time.Now()
	tl := &Timeline{marks: []mark{
		{at: t0, host: "n1", kind: markStart},
		{at: t0, host: "n2", kind: markStart},
		{at: t0.Add(10 * time.Second), host: "n1", kind: markDown},
	}}
	// Connected to n1 until it went down, back on n2 300ms later: a
	// reconnect inside the grace period, no absence.
	u := &User{spans: []span{
		{node: "n1", from: t0, to: t0.Add(10 * time.Second)},
		{node: "n2", from: t0.Add(10300 * time.Millisecond)},
	}}
	if !u.presentThrough(tl, t0.Add(8*time.Second), t0.Add(14*time.Second), time.Second) {
		t.Error("a 300ms reconnect counted as an absence")
	}
	// Still connected to n1 after it was killed: not present.
	v := &User{spans: []span{{node: "n1", from: t0}}}
	if v.presentThrough(tl, t0.Add(8*time.Second), t0.Add(14*time.Second), time.Second) {
		t.Error("a user of a dead node counted as present")
	}
	if !v.presentThrough(tl, t0.Add(2*time.Second), t0.Add(9*time.Second), time.Second) {
		t.Error("a connected user of a live node counted as absent")
	}
}

func TestWriterCheck(t *testing.T) {
	w := &Writer{ID: "w1", tried: 6, acks: []ack{{seq: 4, text: "w1-4"}, {seq: 5, text: "w1-5"}}}
	snap := func(st protocol.Status, text string) Snapshot {
		return Snapshot{Members: []protocol.Member{{User: "w1", Status: st, Text: text}}}
	}
	for _, tc := range []struct {
		name string
		s    Snapshot
		ok   bool
	}{
		{"last ack", snap(protocol.StatusAway, "w1-5"), true},
		{"a later write that was not acknowledged", snap(protocol.StatusBusy, "w1-6"), true},
		{"an older write", snap(protocol.StatusBusy, "w1-4"), false},
		{"offline", Snapshot{}, false},
		{"status of another write", snap(protocol.StatusBusy, "w1-5"), false},
	} {
		if got := w.check(tc.s) == ""; got != tc.ok {
			t.Errorf("%s: check = %q", tc.name, w.check(tc.s))
		}
	}
}

func TestGood(t *testing.T) {
	online := []protocol.Member{{User: "u01", Status: protocol.StatusOnline}}
	ok := func(rev uint64, ms []protocol.Member) polled {
		return polled{reply: Reply{Status: 200}, ready: true, snap: Snapshot{Rev: rev, Members: ms}}
	}
	expect := map[string]bool{"u01": true, "u02": false}
	nodes := []string{"n1", "n2"}
	for _, tc := range []struct {
		name string
		r    round
		want bool
	}{
		{"identical and correct", round{nodes: map[string]polled{"n1": ok(7, online), "n2": ok(7, online)}}, true},
		{"another revision", round{nodes: map[string]polled{"n1": ok(7, online), "n2": ok(8, online)}}, false},
		{"a user missing", round{nodes: map[string]polled{"n1": ok(7, nil), "n2": ok(7, nil)}}, false},
		{"a node not read", round{nodes: map[string]polled{"n1": ok(7, online)}}, false},
		{"a node not ready", round{nodes: map[string]polled{"n1": ok(7, online),
			"n2": {reply: Reply{Status: 200}, snap: Snapshot{Rev: 7, Members: online}}}}, false},
		{"a node answering 503", round{nodes: map[string]polled{"n1": ok(7, online),
			"n2": {reply: Reply{Status: 503, Code: "unavailable"}}}}, false},
	} {
		if got, why := good(tc.r, nodes, expect); got != tc.want {
			t.Errorf("%s: good = %v (%s), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestConvergeDeadline(t *testing.T) {
	t0 := time.Now()
	for _, c := range []struct {
		name      string
		storeBack time.Duration // 0: not measured
		want      time.Duration
	}{
		{"embedded NATS: the goal as it is", 0, convergeGoal},
		{"an external election within the goal", 4 * time.Second, convergeGoal},
		{"an external election that leaves less than the recovery", 9 * time.Second, 11 * time.Second},
		{"an external election past the goal", 15400 * time.Millisecond, 17400 * time.Millisecond},
	} {
		ph := phase{from: t0}
		if c.storeBack > 0 {
			ph.storeBack = t0.Add(c.storeBack)
		}
		if got, _ := convergeDeadline(ph); got != c.want {
			t.Errorf("%s: deadline %v, want %v", c.name, got, c.want)
		}
	}
}
