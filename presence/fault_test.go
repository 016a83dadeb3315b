package presence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/protocol"
)

// storeOutage makes the presence stream take no writes (no stream listens
// on its subjects, as while it has no leader) until the returned function
// is called; reads, watches and core NATS go on.
func (v *env) storeOutage() (end func()) {
	v.t.Helper()
	st, err := v.js.Stream(ctxT(v.t), streamName(DefaultBucket))
	if err != nil {
		v.t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	off := cfg
	off.Subjects = []string{"presenced.test.outage.>"}
	if _, err := v.js.UpdateStream(ctxT(v.t), off); err != nil {
		v.t.Fatal(err)
	}
	return func() {
		v.t.Helper()
		if _, err := v.js.UpdateStream(ctxT(v.t), cfg); err != nil {
			v.t.Fatal(err)
		}
	}
}

// offlines counts, per user, the offline deltas a group's history holds.
func offlines(e *Engine, g string) map[string]int {
	out := map[string]int{}
	for _, d := range groupDeltas(e, g) {
		if d.Status == protocol.StatusOffline {
			out[d.User]++
		}
	}
	return out
}

// threeNodes starts engines a, b and c with one connected user each (ua,
// ub, uc), all members of group g.
func threeNodes(t *testing.T, v *env) (a, b, c *Engine) {
	t.Helper()
	for _, u := range []string{"ua", "ub", "uc"} {
		v.addMember("g", u)
	}
	a, b, c = v.engine("a"), v.engine("b"), v.engine("c")
	for _, p := range []struct {
		e *Engine
		u string
	}{{a, "ua"}, {b, "ub"}, {c, "uc"}} {
		if _, err := p.e.Connect(ctxT(t), SessionInfo{User: p.u}); err != nil {
			t.Fatal(err)
		}
	}
	v.sync(a, b, c)
	return a, b, c
}

// TestOutageIsNoDeath stops the store taking writes for longer than a
// lease's TTL, as a leader election or a partition of the stream's leader
// does, while every node lives. Nobody may go offline: the time no node
// could write counts against no lease.
func TestOutageIsNoDeath(t *testing.T) {
	v := newEnv(t)
	a, b, c := threeNodes(t, v)
	end := v.storeOutage()
	v.pass(10*time.Second, a, b, c)
	end()
	v.pass(4*time.Second, a, b, c)
	for _, e := range []*Engine{a, b, c} {
		for _, u := range []string{"ua", "ub", "uc"} {
			if st := e.Status(u).Status; st != protocol.StatusOnline {
				t.Errorf("%s sees %s %s", e.NodeID(), u, st)
			}
		}
		if off := offlines(e, "g"); len(off) > 0 {
			t.Errorf("%s: false offlines %v", e.NodeID(), off)
		}
	}
}

// TestDeadNodeDuringOutage kills a node and then stops the store taking
// writes for eight seconds (the leader election its death caused): its
// user must go offline, once, within a few seconds of the store taking
// writes again, and nobody else.
func TestDeadNodeDuringOutage(t *testing.T) {
	v := newEnv(t)
	a, b, c := threeNodes(t, v)
	c.Kill()
	end := v.storeOutage()
	v.pass(8*time.Second, a, b)
	end()
	v.pass(2*time.Second, a, b)
	waitStatus(t, a, "uc", protocol.StatusOffline)
	for _, e := range []*Engine{a, b} {
		if off := offlines(e, "g"); off["uc"] != 1 || len(off) != 1 {
			t.Errorf("%s: offlines %v, want uc once", e.NodeID(), off)
		}
	}
}

// availabilityLog records what OnAvailability is told.
type availabilityLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *availabilityLog) record(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *availabilityLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.errs)
}

// TestMinorityIsUnavailable leaves node a alone: the others' heartbeats
// stop and the store takes no writes, as for the minority side of a
// partition. a must say it is unavailable instead of serving its frozen
// picture, and be available again once its lease is written.
func TestMinorityIsUnavailable(t *testing.T) {
	v := newEnv(t)
	var log availabilityLog
	cfg := v.config("a")
	cfg.OnAvailability = log.record
	for _, u := range []string{"ua", "ub", "uc"} {
		v.addMember("g", u)
	}
	a := v.start(cfg)
	b, c := v.engine("b"), v.engine("c")
	v.pass(time.Second, a, b, c)
	b.Kill()
	c.Kill()
	end := v.storeOutage()
	v.pass(time.Second, a)
	if err := a.Available(); err != nil {
		t.Fatalf("unavailable a second into the outage: %v", err)
	}
	v.pass(3*time.Second, a)
	if err := a.Available(); err == nil {
		t.Fatalf("a minority node cut off from the store for 4s is still available (told %s)", &log)
	}
	end()
	v.pass(time.Second, a)
	if err := a.Available(); err != nil {
		t.Fatalf("still unavailable after the store took writes again: %v", err)
	}
	if got := log.String(); len(log.errs) != 2 || log.errs[0] == nil || log.errs[1] != nil {
		t.Fatalf("OnAvailability was told %s, want an error then nil", got)
	}
}

// TestLongOutageIsUnavailable: a node that hears every other node but
// whose store takes no writes for longer than any election says so too.
func TestLongOutageIsUnavailable(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	end := v.storeOutage()
	v.pass(8*time.Second, a)
	if err := a.Available(); err != nil {
		t.Fatalf("unavailable 8s into an outage that an election could explain: %v", err)
	}
	// The first write fails up to a refresh after the outage began; twice
	// the TTL later at most, the node says it is unavailable.
	v.pass(7*time.Second, a)
	early := a.Available()
	if early == nil {
		t.Fatal("still available 15s into the outage")
	}
	// The reason follows the outage: it says how long writes have failed
	// by now, not when the node gave up.
	v.pass(10*time.Second, a)
	if late := a.Available(); late == nil || late.Error() == early.Error() {
		t.Fatalf("25s into the outage the node says %v; at 15s it said %v", late, early)
	}
	end()
	v.pass(time.Second, a)
	if err := a.Available(); err != nil {
		t.Fatalf("still unavailable after the outage: %v", err)
	}
}

// TestStreamLostIsLoadedAgain deletes the presence bucket under a running
// node, as an external NATS that restarted without its memory streams
// does. The node must create it again under a new epoch, write its own
// session and lease again, and give its subscribers a fresh snapshot;
// before, it declared itself broken for good.
func TestStreamLostIsLoadedAgain(t *testing.T) {
	v := newEnv(t)
	v.addMember("g", "u1")
	a := v.engine("a")
	if _, err := a.Connect(ctxT(t), SessionInfo{User: "u1"}); err != nil {
		t.Fatal(err)
	}
	sub := a.NewSubscriber(SubscriberConfig{})
	defer sub.Close()
	if _, err := sub.Subscribe("g", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	epoch := a.Epoch()
	if err := v.js.DeleteStream(ctxT(t), streamName(DefaultBucket)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for a.Epoch() == epoch || a.Available() != nil || a.Status("u1").Status != protocol.StatusOnline {
		if time.Now().After(deadline) {
			t.Fatalf("not loaded again: epoch %s (was %s), available %v, u1 %s",
				a.Epoch(), epoch, a.Available(), a.Status("u1").Status)
		}
		v.pass(500*time.Millisecond, a)
	}
	if snap := a.Snapshot("g"); snap.Online != 1 || snap.Total != 1 {
		t.Fatalf("snapshot after the reload: %+v", snap)
	}
	var reset *Snapshot
	for reset == nil && time.Now().Before(deadline) {
		for _, b := range next(t, sub) {
			if b.Reset != nil {
				reset = b.Reset
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if reset == nil || reset.Epoch != a.Epoch() || len(reset.Members) != 1 || reset.Members[0].User != "u1" {
		t.Fatalf("the subscriber's fresh snapshot: %+v", reset)
	}
}

// TestShutdownWaitsForClosingSession shuts a node down while one of its
// sessions, just closed, has a write in flight: the node's lease must not
// go before that session's grace is stored, or its user goes offline in
// between (and online again when the grace lands) although they reconnect
// elsewhere.
func TestShutdownWaitsForClosingSession(t *testing.T) {
	v := newEnv(t)
	v.addMember("g", "u1")
	a := v.engine("a")
	b := v.engine("b")
	s, err := a.Connect(ctxT(t), SessionInfo{User: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	v.sync(a, b)
	// Hold the session's write slot: a write of it waits for the store.
	s.write <- struct{}{}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err) // Close writes nothing: it does not wait for the slot
	}
	shut := make(chan error, 1)
	go func() { shut <- a.Shutdown(context.Background()) }()
	// Shutdown either waits for the session's slot, to write its grace,
	// or (the bug) deletes the lease without it.
	waitFor(t, "Shutdown waiting or done", func() bool { return s.waiting.Load() == 1 || len(shut) == 1 })
	<-s.write
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	v.sync(b)
	if off := offlines(b, "g"); off["u1"] != 0 {
		t.Fatalf("u1 went offline %d times during a graceful shutdown", off["u1"])
	}
	if st := b.Status("u1").Status; st != protocol.StatusOnline {
		t.Fatalf("u1 is %s during its grace period", st)
	}
}

// waitFor polls cond until it holds (for conditions no event announces).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestResumeOnNodeStartedLater resumes a subscription on a node that
// started after the revision the client resumes from: it holds no history
// of its own for it, but the stream still does.
func TestResumeOnNodeStartedLater(t *testing.T) {
	v := newEnv(t)
	for _, u := range []string{"u1", "u2", "u3"} {
		v.addMember("g", u)
	}
	a := v.engine("a")
	s1, err := a.Connect(ctxT(t), SessionInfo{User: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := a.Connect(ctxT(t), SessionInfo{User: "u2"})
	if err != nil {
		t.Fatal(err)
	}
	v.sync(a)
	snap := a.Snapshot("g")
	// Missed by the client: u1 turns away, u2 leaves, u3 comes and goes.
	if err := s1.SetStatus(ctxT(t), protocol.StatusAway, "lunch"); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	v.removeMember("g", "u2")
	s3, err := a.Connect(ctxT(t), SessionInfo{User: "u3"})
	if err != nil {
		t.Fatal(err)
	}
	v.sync(a)
	b := v.engine("b")
	sub := b.NewSubscriber(SubscriberConfig{})
	defer sub.Close()
	init, err := sub.Subscribe("g", SubscribeOptions{FromRev: snap.Rev, Epoch: snap.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := init.(Resumed)
	if !ok {
		t.Fatalf("a node started later answered %T, want Resumed", init)
	}
	got := map[string]string{}
	var last uint64
	for _, d := range r.Changes {
		if d.Rev <= last {
			t.Fatalf("changes not in revision order: %+v", r.Changes)
		}
		last = d.Rev
		got[d.User] = fmt.Sprintf("%s removed=%v", d.Status, d.Removed)
	}
	want := map[string]string{"u1": "away removed=false", "u2": "offline removed=true", "u3": "online removed=false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed changes %v, want %v", got, want)
	}
	if r.Online != 2 || r.Total != 2 {
		t.Fatalf("resumed counts %d/%d, want 2/2", r.Online, r.Total)
	}
	_ = s3
}

// TestBurstDeliversLatestState publishes bursts of status changes per
// user: what a subscriber is promised is the latest state of every user,
// in revision order, with intermediate states possibly merged.
func TestBurstDeliversLatestState(t *testing.T) {
	v := newEnv(t)
	users := []string{"u1", "u2", "u3", "u4"}
	for _, u := range users {
		v.addMember("g", u)
	}
	cfg := v.config("a")
	cfg.Coalesce = 5 * time.Millisecond
	cfg.Clock = SystemClock{}
	a := v.start(cfg)
	sub := a.NewSubscriber(SubscriberConfig{Queue: 1 << 20})
	defer sub.Close()
	if _, err := sub.Subscribe("g", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	statuses := []protocol.Status{protocol.StatusOnline, protocol.StatusAway, protocol.StatusBusy}
	final := map[string]string{}
	var evs []Event
	for i := range 300 {
		u := users[i%len(users)]
		st := statuses[(i/len(users))%len(statuses)]
		text := fmt.Sprintf("t%d", i)
		evs = append(evs, Event{User: u, Source: "src", Status: st, Text: text})
		final[u] = string(st) + "/" + text
	}
	var lastRev uint64
	for i := 0; i < len(evs); i += 50 {
		res, err := a.PublishBatch(ctxT(t), evs[i:i+50])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			lastRev = max(lastRev, r.Rev)
		}
	}
	if err := a.WaitRev(ctxT(t), lastRev); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var rev uint64
	deadline := time.Now().Add(10 * time.Second)
	for fmt.Sprint(got) != fmt.Sprint(final) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		bs, err := sub.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("latest states %v, want %v: %v", got, final, err)
		}
		for _, b := range bs {
			for _, d := range b.Changes {
				if d.Rev <= rev {
					t.Fatalf("change at revision %d after %d", d.Rev, rev)
				}
				rev = d.Rev
				got[d.User] = string(d.Status) + "/" + d.Text
			}
		}
	}
	_ = jetstream.MemoryStorage
}

// TestLaggingReplicaIsNoLostStream adds a mirror of the presence stream
// that serves direct gets and lacks the epoch key, as a replica that lags
// does. Whether the stream was lost (and the node must reset) is decided
// by the epoch key: read from that replica, it looked gone at times.
func TestLaggingReplicaIsNoLostStream(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	if _, err := v.js.CreateStream(ctxT(t), jetstream.StreamConfig{
		Name: "lagging",
		// The leases, which every refresh writes: the mirror receives
		// messages, and serves direct gets once it has.
		Mirror:       &jetstream.StreamSource{Name: streamName(DefaultBucket), FilterSubject: subjectOf(DefaultBucket, prefixLease+">")},
		MirrorDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.bucket().Put(ctxT(t), leaseKey("probe"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	stale := 0
	for deadline := time.Now().Add(10 * time.Second); stale == 0 && time.Now().Before(deadline); {
		for range 50 {
			if _, err := a.bucket().Get(ctxT(t), keyEpoch); errors.Is(err, jetstream.ErrKeyNotFound) {
				stale++
			}
		}
	}
	if stale == 0 {
		t.Fatal("no direct get reached the mirror: the test shows nothing")
	}
	for i := range 100 {
		lost, err := a.streamLost(ctxT(t))
		if err != nil || lost {
			t.Fatalf("check %d: stream lost %v, %v (direct gets of the epoch: %d not found)", i, lost, err, stale)
		}
	}
}
