package presence

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// next returns what is queued for s without waiting.
func next(t *testing.T, s *Subscriber) []Batch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.mu.Lock()
	n := len(s.queue)
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	b, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return slices.Clone(b)
}

func users(ds []Delta) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.User+":"+string(d.Status))
	}
	return out
}

func TestSubscriberCoalescesWithinWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeeder(t, 25*time.Millisecond, 100)
		f.lease("n", "i")
		f.member("g", "u1")
		f.member("g", "u2")
		f.x.markLoaded()
		s := f.x.newSubscriber(SubscriberConfig{})
		defer s.Close()
		if _, err := s.Subscribe("g", SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		// The first change of a quiet system goes out at once and opens a
		// window.
		f.session("u1", "s", "n", "i", protocol.StatusOnline)
		if b := next(t, s); len(b) != 1 || !slices.Equal(users(b[0].Changes), []string{"u1:online"}) {
			t.Fatalf("leading change = %+v, want u1:online at once", b)
		}
		// Changes inside the window wait for its end and merge.
		f.session("u2", "s", "n", "i", protocol.StatusOnline)
		f.session("u1", "s", "n", "i", protocol.StatusAway)
		time.Sleep(20 * time.Millisecond)
		if b := next(t, s); len(b) != 0 {
			t.Fatalf("batch before the window ended: %+v", b)
		}
		time.Sleep(10 * time.Millisecond)
		b := next(t, s)
		if len(b) != 1 {
			t.Fatalf("batches = %+v, want one", b)
		}
		if got := users(b[0].Changes); !slices.Equal(got, []string{"u2:online", "u1:away"}) {
			t.Fatalf("changes = %v, want last change per user in revision order", got)
		}
		if b[0].Rev != f.rev || b[0].Online != 2 || b[0].Total != 2 {
			t.Fatalf("batch = %+v", b[0])
		}
		// A change in the window that follows a flush waits for its end...
		f.session("u2", "s", "n", "i", protocol.StatusBusy)
		if b := next(t, s); len(b) != 0 {
			t.Fatalf("change inside the follow-up window went out at once: %+v", b)
		}
		time.Sleep(30 * time.Millisecond)
		if b := next(t, s); len(b) != 1 || len(b[0].Changes) != 1 {
			t.Fatalf("second window = %+v", b)
		}
		// ...and once a window passes with nothing, the next change is
		// immediate again.
		time.Sleep(30 * time.Millisecond)
		f.session("u2", "s", "n", "i", protocol.StatusOnline)
		if b := next(t, s); len(b) != 1 || !slices.Equal(users(b[0].Changes), []string{"u2:online"}) {
			t.Fatalf("after a quiet window = %+v, want u2:online at once", b)
		}
	})
}

func TestSubscribeIsAtomic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeeder(t, 25*time.Millisecond, 100)
		f.lease("n", "i")
		f.member("g", "u1")
		f.member("g", "u2")
		f.x.markLoaded()
		old := f.x.newSubscriber(SubscriberConfig{})
		defer old.Close()
		if _, err := old.Subscribe("g", SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		r1 := f.session("u1", "s", "n", "i", protocol.StatusOnline)
		// Inside the window, a new subscriber arrives.
		s := f.x.newSubscriber(SubscriberConfig{})
		defer s.Close()
		in, err := s.Subscribe("g", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snap := in.(Snapshot)
		if snap.Rev != r1 || len(snap.Members) != 1 {
			t.Fatalf("snapshot = %+v, want u1 at %d", snap, r1)
		}
		// The pending delta went to the old subscriber at once, not to the
		// new one (its snapshot has it).
		if b := next(t, old); len(b) != 1 || b[0].Rev != r1 {
			t.Fatalf("old subscriber = %+v", b)
		}
		r2 := f.session("u2", "s", "n", "i", protocol.StatusOnline)
		time.Sleep(30 * time.Millisecond)
		b := next(t, s)
		if len(b) != 1 || len(b[0].Changes) != 1 || b[0].Changes[0].Rev != r2 {
			t.Fatalf("new subscriber = %+v, want only the delta after its snapshot", b)
		}
		if b2 := next(t, old); len(b2) != 1 || &b2[0].Changes[0] != &b[0].Changes[0] {
			t.Fatalf("old subscriber after = %+v, want the batch the new one got", b2)
		}
	})
}

func TestBatchesShareChanges(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n", "i")
	f.member("g", "u")
	f.x.markLoaded()
	var subs []*Subscriber
	for range 3 {
		s := f.x.newSubscriber(SubscriberConfig{})
		defer s.Close()
		if _, err := s.Subscribe("g", SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	f.session("u", "s", "n", "i", protocol.StatusOnline)
	var first *Delta
	for _, s := range subs {
		b := next(t, s)
		if len(b) != 1 || len(b[0].Changes) != 1 {
			t.Fatalf("batches = %+v", b)
		}
		if first == nil {
			first = &b[0].Changes[0]
		} else if &b[0].Changes[0] != first {
			t.Fatal("subscribers got separate copies of one batch")
		}
	}
}

func TestResumeGivesExactlyTheMissedDeltas(t *testing.T) {
	f := newFeeder(t, -1, 8)
	f.lease("n", "i")
	for _, u := range []string{"a", "b", "c"} {
		f.member("g", u)
		f.member("h", u)
	}
	f.x.markLoaded()
	f.x.mu.Lock()
	f.x.epoch = "e1"
	f.x.mu.Unlock()

	// ref sees every delta of g (no coalescing in this index, and ref reads
	// each batch as it comes, so none are merged).
	ref := f.x.newSubscriber(SubscriberConfig{Queue: 1000})
	defer ref.Close()
	if _, err := ref.Subscribe("g", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	s := f.x.newSubscriber(SubscriberConfig{})
	defer s.Close()
	in, err := s.Subscribe("g", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	from := in.(Snapshot).Rev
	s.Unsubscribe("g")

	statuses := []protocol.Status{protocol.StatusOnline, protocol.StatusAway, protocol.StatusBusy}
	var want []Delta
	for i := range 5 {
		f.session([]string{"a", "b", "c"}[i%3], "s", "n", "i", statuses[i%3])
		for _, b := range next(t, ref) {
			want = append(want, b.Changes...)
		}
	}
	f.lease("m", "j") // a revision that touches no group

	in, err = s.Subscribe("g", SubscribeOptions{FromRev: from, Epoch: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	res, ok := in.(Resumed)
	if !ok {
		t.Fatalf("resume = %T %+v, want Resumed", in, in)
	}
	if !slices.Equal(res.Changes, want) || res.Rev != f.rev || res.Online != 3 {
		t.Fatalf("resumed = %+v\nwant changes %+v", res, want)
	}
	// And it continues without gap.
	r := f.session("a", "s", "n", "i", protocol.StatusAway)
	if b := next(t, s); len(b) != 1 || b[0].Changes[0].Rev != r {
		t.Fatalf("after resume = %+v", b)
	}

	// Fresh snapshots: wrong epoch, and a revision the window no longer has.
	s.Unsubscribe("g")
	in, _ = s.Subscribe("g", SubscribeOptions{FromRev: from, Epoch: "e0"})
	if snap, ok := in.(Snapshot); !ok || !snap.Fresh || snap.Rev != f.rev {
		t.Fatalf("resume with another epoch = %+v", in)
	}
	for i := range 10 {
		f.session("b", "s", "n", "i", statuses[i%3])
	}
	// Past the window the changes are derived from the state: b's latest.
	s.Unsubscribe("g")
	in, _ = s.Subscribe("g", SubscribeOptions{FromRev: r, Epoch: "e1"})
	if res, ok := in.(Resumed); !ok || len(res.Changes) != 1 || res.Changes[0].User != "b" ||
		res.Changes[0].Status != statuses[9%3] || res.Changes[0].Rev != f.rev {
		t.Fatalf("resume past the window = %+v", in)
	}
	// Once delete markers after r may be purged, nothing can be derived.
	f.x.mu.Lock()
	f.x.purged = r + 1
	f.x.mu.Unlock()
	s.Unsubscribe("g")
	in, _ = s.Subscribe("g", SubscribeOptions{FromRev: r, Epoch: "e1"})
	if snap, ok := in.(Snapshot); !ok || !snap.Fresh || len(snap.Members) != 3 {
		t.Fatalf("resume past the purge floor = %+v", in)
	}
	// A revision from the future (another node ahead) is not resumed here.
	s.Unsubscribe("g")
	in, _ = s.Subscribe("g", SubscribeOptions{FromRev: f.rev + 5, Epoch: "e1"})
	if snap, ok := in.(Snapshot); !ok || !snap.Fresh {
		t.Fatalf("resume from the future = %+v", in)
	}
}

func TestSlowConsumerIsCut(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n", "i")
	f.member("g", "u")
	f.member("h", "u")
	f.x.markLoaded()
	s := f.x.newSubscriber(SubscriberConfig{Queue: 2})
	defer s.Close()
	for _, g := range []string{"g", "h"} {
		if _, err := s.Subscribe(g, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	fast := f.x.newSubscriber(SubscriberConfig{Queue: 100})
	defer fast.Close()
	if _, err := fast.Subscribe("g", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	f.session("u", "s", "n", "i", protocol.StatusOnline) // 2 batches: g, h
	f.session("u", "s", "n", "i", protocol.StatusAway)   // overflow
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Next = %v, want ErrSlowConsumer", err)
	}
	if _, err := s.Subscribe("g", SubscribeOptions{}); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Subscribe on a dead subscriber = %v", err)
	}
	st := f.x.stats()
	if st.SlowConsumers != 1 || st.Subscribers != 1 {
		t.Fatalf("stats = %+v, want 1 slow, 1 left", st)
	}
	f.x.mu.RLock()
	n := len(f.x.groups["h"].subs) + len(f.x.groups["g"].subs)
	f.x.mu.RUnlock()
	if n != 1 {
		t.Fatalf("dead subscriber still attached: %d subscriptions", n)
	}
	// The other subscriber of g, which has not read either, gets g's two
	// batches as one.
	if b := next(t, fast); len(b) != 1 || !slices.Equal(users(b[0].Changes), []string{"u:away"}) {
		t.Fatalf("fast subscriber = %+v", b)
	}
}

func TestCountsOnlyAndWatchCounts(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n", "i")
	f.member("big", "u1")
	f.member("other", "u1")
	f.x.markLoaded()
	s := f.x.newSubscriber(SubscriberConfig{})
	defer s.Close()
	in, err := s.Subscribe("big", SubscribeOptions{CountsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if snap := in.(Snapshot); snap.Members != nil || snap.Total != 1 {
		t.Fatalf("counts-only snapshot = %+v", snap)
	}
	w := f.x.newSubscriber(SubscriberConfig{})
	defer w.Close()
	counts, err := w.WatchCounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts[0].Group != "big" || counts[1].Group != "other" {
		t.Fatalf("counts = %+v", counts)
	}
	f.session("u1", "s", "n", "i", protocol.StatusOnline)
	f.session("u1", "s", "n", "i", protocol.StatusAway) // counts unchanged: nothing
	f.member("big", "u2")                               // total changes
	b := next(t, s)
	if len(b) != 2 || !b[0].CountsOnly || b[0].Online != 1 || b[1].Total != 2 || b[0].Changes != nil {
		t.Fatalf("counts-only batches = %+v", b)
	}
	if b := next(t, w); len(b) != 3 { // big, other, big
		t.Fatalf("watcher batches = %+v", b)
	}
	w.UnwatchCounts()
	if _, err := w.WatchCounts([]string{"other"}); err != nil {
		t.Fatal(err)
	}
	f.del(membership.MemberKey("big", "u2"))
	f.del(membership.MemberKey("other", "u1"))
	if b := next(t, w); len(b) != 1 || b[0].Group != "other" || b[0].Total != 0 {
		t.Fatalf("watcher of one group = %+v", b)
	}
}

func TestBatchesOrderedAcrossGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeeder(t, 25*time.Millisecond, 100)
		f.lease("n", "i")
		groups := []string{"g1", "g2", "g3"}
		for i, u := range []string{"u1", "u2", "u3"} {
			f.member(groups[i], u)
			f.member("all", u)
		}
		f.x.markLoaded()
		s := f.x.newSubscriber(SubscriberConfig{Queue: 1000})
		defer s.Close()
		for _, g := range append(groups, "all") {
			if _, err := s.Subscribe(g, SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var got []Batch
		for i := range 30 {
			u := []string{"u3", "u1", "u2"}[i%3]
			f.session(u, "s", "n", "i", []protocol.Status{protocol.StatusOnline, protocol.StatusAway}[i%2])
			if i%7 == 0 {
				time.Sleep(25 * time.Millisecond)
				synctest.Wait()
				got = append(got, next(t, s)...)
			}
		}
		time.Sleep(25 * time.Millisecond)
		synctest.Wait()
		got = append(got, next(t, s)...)
		last := map[string]uint64{}
		var prev uint64
		for _, b := range got {
			if b.Rev < prev {
				t.Fatalf("batch rev %d after %d", b.Rev, prev)
			}
			prev = b.Rev
			for _, d := range b.Changes {
				if d.Rev <= last[b.Group] || d.Rev > b.Rev {
					t.Fatalf("group %s: delta rev %d after %d (batch %d)", b.Group, d.Rev, last[b.Group], b.Rev)
				}
				last[b.Group] = d.Rev
			}
		}
		if prev != f.rev {
			t.Fatalf("last batch rev %d, want %d", prev, f.rev)
		}
	})
}

// TestReadyAndTryNext: a subscriber drained by a shared worker is signalled
// through Ready and drained without blocking.
func TestReadyAndTryNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeeder(t, -1, 100)
		f.lease("n", "i")
		f.member("g", "u1")
		f.x.markLoaded()
		var signals int
		s := f.x.newSubscriber(SubscriberConfig{Queue: 2, Ready: func() { signals++ }})
		defer s.Close()
		if _, err := s.Subscribe("g", SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if b, err := s.TryNext(); b != nil || err != nil {
			t.Fatalf("empty queue: %v %v", b, err)
		}
		f.session("u1", "s", "n", "i", protocol.StatusOnline)
		if signals != 1 {
			t.Fatalf("Ready called %d times, want 1", signals)
		}
		if b, err := s.TryNext(); len(b) != 1 || err != nil {
			t.Fatalf("TryNext = %v %v", b, err)
		}
		for _, st := range []protocol.Status{protocol.StatusAway, protocol.StatusBusy, protocol.StatusOnline} {
			f.session("u1", "s", "n", "i", st)
		}
		if _, err := s.TryNext(); err != ErrSlowConsumer {
			t.Fatalf("overflowed queue: %v, want ErrSlowConsumer", err)
		}
		if signals != 4 {
			t.Fatalf("Ready called %d times, want 4 (3 batches queued or failed)", signals)
		}
	})
}

// TestWatchUsers follows users rather than groups: each change of a
// watched user's status or text arrives on its own, and only those.
func TestWatchUsers(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n", "i")
	f.x.markLoaded()
	s := f.x.newSubscriber(SubscriberConfig{})
	defer s.Close()
	all := f.x.newSubscriber(SubscriberConfig{})
	defer all.Close()
	f.session("a", "s", "n", "i", protocol.StatusOnline)
	got, err := s.WatchUsers([]string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Status != protocol.StatusOnline || got[1].Status != protocol.StatusOffline {
		t.Fatalf("current statuses %+v", got)
	}
	if err := all.WatchAllUsers(); err != nil {
		t.Fatal(err)
	}
	r1 := f.session("a", "s", "n", "i", protocol.StatusAway)
	f.session("c", "s", "n", "i", protocol.StatusOnline)
	r3 := f.session("b", "s", "n", "i", protocol.StatusBusy)
	var changes []string
	for _, b := range next(t, s) {
		for _, c := range b.Users {
			changes = append(changes, fmt.Sprintf("%s:%s@%d", c.User, c.Status, c.Rev))
		}
	}
	want := fmt.Sprintf("[a:away@%d b:busy@%d]", r1, r3)
	if fmt.Sprint(changes) != want {
		t.Fatalf("watched changes %v, want %s", changes, want)
	}
	if n := len(next(t, all)); n != 3 {
		t.Fatalf("a watcher of every user got %d batches, want 3", n)
	}
	s.UnwatchUsers([]string{"a"})
	f.session("a", "s", "n", "i", protocol.StatusOnline)
	if b := next(t, s); len(b) != 0 {
		t.Fatalf("after unwatching a: %+v", b)
	}
}

// TestFanoutBudgetWidensWindow: a burst of joins to a group with many
// subscribers costs batches in proportion to its duration under the fan-out
// budget (the window widens to subscribers/budget), while every join still
// arrives; a small group keeps the coalescing window.
func TestFanoutBudgetWidensWindow(t *testing.T) {
	const members, subs = 300, 100
	for _, tt := range []struct {
		name    string
		budget  int
		window  time.Duration // after the leading flush
		batches int           // at most, per subscriber
	}{
		{"no budget", -1, 25 * time.Millisecond, 14},
		{"budget", subs * 10, 100 * time.Millisecond, 5}, // 100 batches a flush, 1,000 a second
		{"budget a small group does not reach", subs * 100, 25 * time.Millisecond, 14},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFeeder(t, 25*time.Millisecond, 1000)
				f.x.fan.budget = tt.budget
				f.lease("n", "i")
				for i := range members {
					f.member("g", fmt.Sprintf("u%d", i))
				}
				f.x.markLoaded()
				var ss []*Subscriber
				for range subs {
					s := f.x.newSubscriber(SubscriberConfig{Queue: 1000})
					defer s.Close()
					if _, err := s.Subscribe("g", SubscribeOptions{}); err != nil {
						t.Fatal(err)
					}
					ss = append(ss, s)
				}
				// One join a millisecond for 300 ms.
				for i := range members {
					f.session(fmt.Sprintf("u%d", i), "s", "n", "i", protocol.StatusOnline)
					if i == 0 {
						if w := f.x.stats().FanoutWindow; w != tt.window {
							t.Fatalf("window after the leading flush = %v, want %v", w, tt.window)
						}
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(time.Second)
				for i, s := range ss {
					var online []string
					n := 0
					for _, b := range next(t, s) {
						n++
						for _, d := range b.Changes {
							online = append(online, d.User)
						}
						if b.Online > members {
							t.Fatalf("online %d", b.Online)
						}
					}
					if len(online) != members {
						t.Fatalf("subscriber %d saw %d joins, want %d", i, len(online), members)
					}
					if n > tt.batches {
						t.Fatalf("subscriber %d got %d batches, want at most %d", i, n, tt.batches)
					}
					if i == 0 {
						t.Logf("%d batches per subscriber", n)
					}
				}
			})
		})
	}
}

// TestLateSubscriberGetsOneBatchPerGroup: a subscriber that has not read
// while several windows went by gets each group's batches as one, the
// last change of each user in the order of those changes, with the last
// batch's counts and revision; batches still never go back in revision.
// Before, it got every window's batch (here six, one per change), each a
// frame of its own.
func TestLateSubscriberGetsOneBatchPerGroup(t *testing.T) {
	f := newFeeder(t, -1, 100)
	f.lease("n", "i")
	f.member("g", "u1")
	f.member("g", "u2")
	f.member("h", "u1")
	f.x.markLoaded()
	late := f.x.newSubscriber(SubscriberConfig{})
	defer late.Close()
	prompt := f.x.newSubscriber(SubscriberConfig{})
	defer prompt.Close()
	for _, s := range []*Subscriber{late, prompt} {
		for _, g := range []string{"g", "h"} {
			if _, err := s.Subscribe(g, SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var promptBatches int
	for _, c := range []struct {
		user string
		st   protocol.Status
	}{{"u1", protocol.StatusOnline}, {"u2", protocol.StatusOnline}, {"u1", protocol.StatusAway}, {"u2", protocol.StatusBusy}} {
		f.session(c.user, c.user+"-s", "n", "i", c.st)
		for _, b := range next(t, prompt) {
			promptBatches++
			if b.Merged {
				t.Fatalf("a subscriber that keeps up got a merged batch: %+v", b)
			}
		}
	}
	if promptBatches != 6 {
		t.Fatalf("the prompt subscriber got %d batches, want 6 (one per change and group)", promptBatches)
	}
	got, err := late.TryNext()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("late subscriber got %d batches, want 2 (one per group): %+v", len(got), got)
	}
	h, g := got[0], got[1]
	if h.Group != "h" || !slices.Equal(users(h.Changes), []string{"u1:away"}) || !h.Merged {
		t.Fatalf("h = %+v, want u1:away, merged", h)
	}
	if g.Group != "g" || !slices.Equal(users(g.Changes), []string{"u1:away", "u2:busy"}) || !g.Merged {
		t.Fatalf("g = %+v, want u1:away then u2:busy, merged", g)
	}
	if g.Rev != f.rev || g.Online != 2 || g.Total != 2 || h.Rev > g.Rev {
		t.Fatalf("revisions and counts: h %+v, g %+v (last rev %d)", h, g, f.rev)
	}
	if b, _ := late.TryNext(); len(b) != 0 {
		t.Fatalf("left over: %+v", b)
	}
}

// TestMergeRunsStopsAtReset: a reset of a group is not merged, and deltas
// on either side of it stay apart; other groups' and counts batches keep
// their place.
func TestMergeRunsStopsAtReset(t *testing.T) {
	d := func(u string, rev uint64) Delta { return Delta{User: u, Status: protocol.StatusOnline, Rev: rev} }
	q := []Batch{
		{Group: "g", Rev: 1, Changes: []Delta{d("a", 1)}},
		{Group: "g", Rev: 2, Changes: []Delta{d("b", 2)}},
		{Group: "x", Rev: 3, CountsOnly: true},
		{Group: "g", Rev: 4, Reset: &Snapshot{}},
		{Group: "g", Rev: 5, Changes: []Delta{d("a", 5)}},
		{Users: []Change{{User: "a", Rev: 6}}},
		{Group: "g", Rev: 7, Changes: []Delta{d("c", 7), d("a", 7)}},
	}
	got := mergeRuns(q)
	var desc []string
	for _, b := range got {
		desc = append(desc, fmt.Sprintf("%s@%d%v merged=%v", b.Group, b.Rev, users(b.Changes), b.Merged))
	}
	want := []string{
		"g@2[a:online b:online] merged=true",
		"x@3[] merged=false",
		"g@4[] merged=false",
		"@0[] merged=false",
		"g@7[c:online a:online] merged=true",
	}
	if !slices.Equal(desc, want) {
		t.Fatalf("merged:\n%v\nwant\n%v", desc, want)
	}
}

// TestHasRun: the short and the long queue's checks agree.
func TestHasRun(t *testing.T) {
	for _, n := range []int{2, 16, 17, 300} {
		q := make([]Batch, n)
		for i := range q {
			q[i] = Batch{Group: fmt.Sprintf("g%d", i)}
		}
		if hasRun(q) {
			t.Fatalf("%d batches of %d groups: a run found", n, n)
		}
		q[n-1].Group = "g0"
		if !hasRun(q) {
			t.Fatalf("%d batches, the first and last of one group: no run found", n)
		}
		q[n/2] = Batch{Group: "g0", Reset: &Snapshot{}}
		if n > 2 && hasRun(q) {
			t.Fatalf("%d batches, a reset between the group's two: a run found", n)
		}
		q[n-1].CountsOnly = true
		q[n/2] = Batch{Group: "g1", CountsOnly: true}
		if hasRun(q) {
			t.Fatalf("%d batches with counts of one group: a run found", n)
		}
	}
}

// TestTrimKeepsWhatWasReturned: a trimmed subscriber holds no queue
// array, the batches TryNext returned before stay as they were, and it
// queues again afterwards.
func TestTrimKeepsWhatWasReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeeder(t, -1, 100)
		f.lease("n", "i")
		f.member("g", "u1")
		f.x.markLoaded()
		s := f.x.newSubscriber(SubscriberConfig{})
		defer s.Close()
		if _, err := s.Subscribe("g", SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		f.session("u1", "s", "n", "i", protocol.StatusOnline)
		got, err := s.TryNext()
		if len(got) != 1 || err != nil {
			t.Fatalf("TryNext = %v %v", got, err)
		}
		before := got[0]
		s.Trim()
		s.mu.Lock()
		held := cap(s.queue) + cap(s.spare)
		s.mu.Unlock()
		if held != 0 {
			t.Fatalf("a trimmed subscriber holds queue arrays with room for %d batches", held)
		}
		f.session("u1", "s", "n", "i", protocol.StatusAway)
		if !reflect.DeepEqual(got[0], before) {
			t.Fatalf("the batch returned before Trim changed: %+v, was %+v", got[0], before)
		}
		next, err := s.TryNext()
		if len(next) != 1 || err != nil || next[0].Changes[0].Status != protocol.StatusAway {
			t.Fatalf("TryNext after Trim = %+v %v", next, err)
		}
	})
}
