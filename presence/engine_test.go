package presence

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

func (f *feed) expect(t *testing.T, n int, engines ...*Engine) []Change {
	t.Helper()
	var out []Change
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for len(out) < n {
		select {
		case c := <-f.ch:
			out = append(out, c)
		case <-deadline.C:
			t.Fatalf("change feed: got %d of %d: %+v", len(out), n, out)
		}
	}
	for _, e := range engines {
		_ = e.cfg.Conn.Flush()
	}
	if extra := f.drain(t); len(extra) > 0 {
		t.Fatalf("change feed: unexpected extra changes %+v", extra)
	}
	return out
}

func TestEngineStartLoadsMembership(t *testing.T) {
	v := newEnv(t)
	v.addMember("g1", "u1")
	v.addMember("g1", "u2")
	v.addMember("g2", "u1")
	v.removeMember("g1", "u2")
	a := v.engine("a")
	// Start returns only once the sourced membership is applied.
	if c, ok := a.GroupCount("g1"); !ok || c.Total != 1 {
		t.Fatalf("g1 count at ready = %+v %v", c, ok)
	}
	if c, ok := a.GroupCount("g2"); !ok || c.Total != 1 {
		t.Fatalf("g2 count at ready = %+v %v", c, ok)
	}
	if a.Epoch() == "" {
		t.Fatal("no epoch")
	}
	select {
	case <-a.Ready():
	default:
		t.Fatal("Ready not closed after Start")
	}

	s, err := a.Connect(ctxT(t), SessionInfo{User: "u1", Device: "web"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u1", protocol.StatusOnline)
	// A membership change reaches the index through the sourced stream.
	v.addMember("g3", "u1")
	waitUntil(t, a, "u1 in g3", func() bool { return slices.Contains(a.WhereNow("u1"), "g3") })
	snap := a.Snapshot("g3")
	if snap.Online != 1 || snap.Total != 1 || len(snap.Members) != 1 || snap.Members[0].User != "u1" {
		t.Fatalf("g3 snapshot = %+v", snap)
	}
	d := groupDeltas(a, "g3")
	if len(d) != 1 || d[0].User != "u1" || d[0].Status != protocol.StatusOnline {
		t.Fatalf("g3 deltas = %+v", d)
	}
	v.removeMember("g3", "u1")
	waitUntil(t, a, "u1 out of g3", func() bool { return !slices.Contains(a.WhereNow("u1"), "g3") })
	_ = s
}

func TestEngineGracePeriod(t *testing.T) {
	v := newEnv(t)
	v.addMember("g", "u")
	a := v.engine("a")
	ctx := ctxT(t)

	s1, err := a.Connect(ctx, SessionInfo{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOnline)
	if err := s1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v.sync(a)
	if st := a.Status("u").Status; st != protocol.StatusOnline {
		t.Fatalf("right after close: %s, want online (grace)", st)
	}
	// A reconnect inside the grace period: no offline/online pair. Time
	// passes with v.pass, which waits for the engine's loops to sleep
	// again: a bare clock jump can land while the sweeper is awake, which
	// then sleeps past the end of the grace.
	v.pass(4*time.Second, a)
	s2, err := a.Connect(ctx, SessionInfo{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	v.pass(2*time.Second, a) // s1's grace is over
	waitUntil(t, a, "s1 swept", func() bool { return a.Stats().Sessions == 1 })
	if d := groupDeltas(a, "g"); len(d) != 1 || d[0].Status != protocol.StatusOnline {
		t.Fatalf("deltas after reconnect in grace = %+v, want one online", d)
	}
	// The last session closes: offline only after the grace period.
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v.pass(4*time.Second, a)
	if st := a.Status("u").Status; st != protocol.StatusOnline {
		t.Fatalf("inside grace: %s, want online", st)
	}
	v.pass(2*time.Second, a)
	waitStatus(t, a, "u", protocol.StatusOffline)
	d := groupDeltas(a, "g")
	if len(d) != 2 || d[1].Status != protocol.StatusOffline {
		t.Fatalf("deltas = %+v, want online then offline", d)
	}
	if ls := a.Status("u").LastSeen; ls.IsZero() {
		t.Fatal("no last seen after going offline")
	}
	if err := s2.SetStatus(ctx, protocol.StatusAway, ""); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("SetStatus on closed session: %v", err)
	}
}

func TestEngineLeaseExpiry(t *testing.T) {
	v := newEnv(t)
	for _, u := range []string{"u1", "u2", "u3"} {
		v.addMember("g", u)
	}
	a := v.engine("a")
	b := v.engine("b")
	f := v.feed()
	sub := a.NewSubscriber(SubscriberConfig{})
	defer sub.Close()
	if _, err := sub.Subscribe("g", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for _, u := range []string{"u1", "u2"} {
		if _, err := b.Connect(ctx, SessionInfo{User: u}); err != nil {
			t.Fatal(err)
		}
	}
	// u3 is on both nodes: it stays online.
	if _, err := b.Connect(ctx, SessionInfo{User: "u3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(ctx, SessionInfo{User: "u3"}); err != nil {
		t.Fatal(err)
	}
	v.sync(a, b)
	if on := f.expect(t, 3, a, b); len(on) != 3 {
		t.Fatalf("online changes = %+v", on)
	}
	b.Kill()
	v.pass(time.Second, a)
	if st := a.Status("u1").Status; st != protocol.StatusOnline {
		t.Fatalf("a second after b died: %s", st)
	}
	// b is silent (six of a's heartbeats) and missed a lease refresh: its
	// lease goes, well before its TTL.
	v.pass(2*time.Second+500*time.Millisecond, a)
	waitStatus(t, a, "u1", protocol.StatusOffline)
	waitStatus(t, a, "u2", protocol.StatusOffline)
	// b's stale session keys are purged too (no status change).
	waitUntil(t, a, "stale sessions purged", func() bool {
		a.x.mu.RLock()
		defer a.x.mu.RUnlock()
		return len(a.x.nodeSessions["b"]) == 0
	})
	if st := a.Status("u3").Status; st != protocol.StatusOnline {
		t.Fatalf("u3 (also on a) = %s, want online", st)
	}
	offline := map[string]int{}
	for _, d := range groupDeltas(a, "g") {
		if d.Status == protocol.StatusOffline {
			offline[d.User]++
		}
	}
	if offline["u1"] != 1 || offline["u2"] != 1 || offline["u3"] != 0 {
		t.Fatalf("offline deltas per user = %v, want u1 and u2 once", offline)
	}
	// The subscriber saw the same, in one batch at the lease's revision.
	clear(offline)
	var at []uint64
	for _, bt := range next(t, sub) {
		for _, d := range bt.Changes {
			if d.Status == protocol.StatusOffline {
				offline[d.User]++
				at = append(at, d.Rev)
			}
		}
	}
	if offline["u1"] != 1 || offline["u2"] != 1 || len(at) != 2 || at[0] != at[1] {
		t.Fatalf("subscriber offline deltas = %v at %v, want u1 and u2 once at one revision", offline, at)
	}
	changes := f.expect(t, 2, a)
	for _, c := range changes {
		if c.Status != protocol.StatusOffline || (c.User != "u1" && c.User != "u2") {
			t.Fatalf("change feed after lease expiry = %+v", changes)
		}
	}
}

func TestEngineManualStatusExpiry(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	ctx := ctxT(t)
	if _, err := a.Connect(ctx, SessionInfo{User: "u"}); err != nil {
		t.Fatal(err)
	}
	err := a.SetManual(ctx, "u", Manual{Status: protocol.StatusBusy, Text: "deep work", Expires: v.clock.Now().Add(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusBusy)
	if txt := a.Status("u").Text; txt != "deep work" {
		t.Fatalf("text = %q", txt)
	}
	v.clock.Advance(9 * time.Second)
	v.sync(a)
	if st := a.Status("u").Status; st != protocol.StatusBusy {
		t.Fatalf("before expiry: %s", st)
	}
	v.clock.Advance(2 * time.Second)
	waitStatus(t, a, "u", protocol.StatusOnline)
	if txt := a.Status("u").Text; txt != "" {
		t.Fatalf("text after expiry = %q", txt)
	}

	// Invisible, then cleared.
	if err := a.SetManual(ctx, "u", Manual{Status: protocol.StatusOffline}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOffline)
	if err := a.SetManual(ctx, "u", Manual{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOnline)

	for _, bad := range []Manual{
		{Status: "sleepy"},
		{Status: protocol.StatusBusy, Expires: v.clock.Now().Add(-time.Second)},
		{Text: string(make([]byte, protocol.MaxStatusText+1))},
	} {
		if err := a.SetManual(ctx, "u", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetManual(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestEngineSourceTTL(t *testing.T) {
	v := newEnv(t)
	v.addMember("g", "u")
	a := v.engine("a")
	ctx := ctxT(t)
	rev, err := a.Publish(ctx, Event{User: "u", Status: protocol.StatusBusy, Text: "in a call", Source: "phone", TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if st := a.Status("u"); st.Status != protocol.StatusBusy || st.Text != "in a call" {
		t.Fatalf("after publish: %+v", st)
	}
	// Refreshed before the TTL: it lives on.
	v.clock.Advance(20 * time.Second)
	if _, err := a.Publish(ctx, Event{User: "u", Status: protocol.StatusBusy, Text: "in a call", Source: "phone", TTL: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(20 * time.Second)
	v.sync(a)
	if st := a.Status("u").Status; st != protocol.StatusBusy {
		t.Fatalf("refreshed source after 40s: %s", st)
	}
	v.clock.Advance(11 * time.Second)
	waitStatus(t, a, "u", protocol.StatusOffline)
	if d := groupDeltas(a, "g"); len(d) != 2 {
		t.Fatalf("deltas = %+v, want busy then offline", d)
	}

	// Without TTL the source stays until it publishes offline.
	if _, err := a.Publish(ctx, Event{User: "u", Status: protocol.StatusOnline, Source: "crm"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOnline)
	v.clock.Advance(time.Hour)
	v.sync(a)
	if st := a.Status("u").Status; st != protocol.StatusOnline {
		t.Fatalf("source without ttl after an hour: %s", st)
	}
	if _, err := a.Publish(ctx, Event{User: "u", Status: protocol.StatusOffline, Source: "crm"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOffline)

	for _, bad := range []Event{
		{User: "u", Status: protocol.StatusOnline},
		{User: "u.x", Status: protocol.StatusOnline, Source: "s"},
		{User: "u", Status: "gone", Source: "s"},
		{User: "u", Status: protocol.StatusOnline, Source: "s", TTL: -time.Second},
	} {
		if _, err := a.Publish(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Publish(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestEngineGracefulShutdownKeepsUsersThroughGrace(t *testing.T) {
	v := newEnv(t)
	v.addMember("g", "u1")
	v.addMember("g", "u2")
	a := v.engine("a")
	b := v.engine("b")
	ctx := ctxT(t)
	for _, u := range []string{"u1", "u2"} {
		if _, err := b.Connect(ctx, SessionInfo{User: u}); err != nil {
			t.Fatal(err)
		}
	}
	waitStatus(t, a, "u2", protocol.StatusOnline)
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	v.sync(a)
	a.x.mu.RLock()
	_, leased := a.x.leases["b"]
	a.x.mu.RUnlock()
	if leased {
		t.Fatal("b's lease survived a graceful shutdown")
	}
	// u1 reconnects to a within the grace period (a rolling restart).
	if _, err := a.Connect(ctx, SessionInfo{User: "u1"}); err != nil {
		t.Fatal(err)
	}
	v.sync(a)
	if st := a.Status("u2").Status; st != protocol.StatusOnline {
		t.Fatalf("u2 during grace: %s", st)
	}
	v.clock.Advance(6 * time.Second)
	waitStatus(t, a, "u2", protocol.StatusOffline)
	if st := a.Status("u1").Status; st != protocol.StatusOnline {
		t.Fatalf("u1 after grace: %s", st)
	}
	for _, d := range groupDeltas(a, "g") {
		if d.User == "u1" && d.Status == protocol.StatusOffline {
			t.Fatalf("u1 flapped: %+v", groupDeltas(a, "g"))
		}
	}
	if _, err := b.Connect(ctx, SessionInfo{User: "u3"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect after Shutdown = %v", err)
	}
}

func TestEngineConnectValidates(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	for _, info := range []SessionInfo{
		{User: ""},
		{User: "a.b"},
		{User: "u", Status: protocol.StatusOffline},
		{User: "u", Device: string(make([]byte, MaxDeviceLen+1))},
	} {
		if _, err := a.Connect(context.Background(), info); !errors.Is(err, ErrInvalid) {
			t.Errorf("Connect(%+v) = %v, want ErrInvalid", info, err)
		}
	}
}

// TestWaitRevReachedIsNoError: a wait for a revision already applied ends
// without error, whatever its context: a write that was applied must not
// be reported as failed because its caller's context ended right after.
func TestWaitRevReachedIsNoError(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	rev := v.addMember("g", "u")
	if err := a.WaitRev(ctxT(t), rev); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 64 {
		if err := a.WaitRev(done, rev); err != nil {
			t.Fatalf("wait for revision %d, applied: %v", rev, err)
		}
	}
}
