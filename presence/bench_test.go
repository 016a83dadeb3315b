package presence

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// benchIndex is a loaded index with one lease, for benchmarks.
func benchIndex(b *testing.B, history int) (*index, func(key string, v any)) {
	x := newIndex("n", SystemClock{}, zap.NewNop(), -1, history)
	b.Cleanup(x.close)
	var rev uint64
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(key string, v any) {
		raw, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		rev++
		now = now.Add(time.Millisecond)
		x.apply(entry{op: opPut, key: key, value: raw, rev: rev, created: now})
	}
	put(leaseKey("n"), leaseRecord{Node: "n", Inst: "i", Expires: now.Add(time.Hour)})
	return x, put
}

func sessionValue(b *testing.B, user string, st protocol.Status) []byte {
	raw, err := json.Marshal(sessionRecord{User: user, Session: "s", Node: "n", Inst: "i", Status: st})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkApplyEvent applies one session write (a status change of a user
// in 5 groups of 1000 members, each with 10 subscribers), JSON decoding,
// aggregation, deltas and batches included.
func BenchmarkApplyEvent(b *testing.B) { benchToggle(b, 5, 1000, 10) }

// benchToggle applies b.N status changes of user u1, a member of every one
// of groups groups of members members, each watched by subs subscribers,
// as the watch loop does on the node that leads.
func benchToggle(b *testing.B, groups, members, subs int) {
	x, put := benchIndex(b, DefaultHistory)
	for g := range groups {
		for u := range members {
			put(membership.MemberKey(fmt.Sprintf("g%d", g), fmt.Sprintf("u%d", u)), membership.Member{})
		}
	}
	x.markLoaded()
	var all []*Subscriber
	for g := range groups {
		for range subs {
			s := x.newSubscriber(SubscriberConfig{Queue: 1 << 30})
			if _, err := s.Subscribe(fmt.Sprintf("g%d", g), SubscribeOptions{}); err != nil {
				b.Fatal(err)
			}
			all = append(all, s)
		}
	}
	vals := [2][]byte{sessionValue(b, "u1", protocol.StatusOnline), sessionValue(b, "u1", protocol.StatusAway)}
	rev := x.currentRev()
	now := time.Now()
	key := sessionKey("u1", "s")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rev++
		x.apply(entry{op: opPut, key: key, value: vals[i%2], rev: rev, created: now})
		_ = x.takeChanges() // as the watch loop does; this node leads
		if i%64 == 63 {
			drainQueues(all) // what the consumers' Next does
		}
	}
	b.StopTimer()
	if st := x.stats(); st.SlowConsumers != 0 {
		b.Fatalf("slow consumers: %d", st.SlowConsumers)
	}
}

// drainQueues empties subscriber queues the way Next does, keeping their
// capacity.
func drainQueues(subs []*Subscriber) {
	for _, s := range subs {
		s.mu.Lock()
		s.queue = s.queue[:0]
		s.mu.Unlock()
	}
}

// BenchmarkSnapshot10k takes a snapshot of a 10,000-member group with
// 5,000 members present.
func BenchmarkSnapshot10k(b *testing.B) {
	x, put := benchIndex(b, DefaultHistory)
	for u := range 10000 {
		id := fmt.Sprintf("user%05d", (u*7919)%10000) // not in id order
		put(membership.MemberKey("big", id), membership.Member{})
		if u%2 == 0 {
			put(sessionKey(id, "s"), sessionRecord{Node: "n", Inst: "i", Status: protocol.StatusOnline, Text: "hi"})
		}
	}
	x.markLoaded()
	if s := x.snapshot("big"); len(s.Members) != 5000 || s.Total != 10000 {
		b.Fatalf("snapshot %d/%d", len(s.Members), s.Total)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = x.snapshot("big")
	}
}

// BenchmarkFanout100Groups changes the status of a user who is in 100
// groups, each with 10 subscribers: 100 deltas, 100 shared batches, 1000
// queue pushes per event.
func BenchmarkFanout100Groups(b *testing.B) { benchToggle(b, 100, 50, 10) }

// BenchmarkIndexMemory loads a node's presence index with 100,000 users in
// 1,000 groups of 1,000 members (10 groups each), then a session for half
// of the users, and reports the heap the index holds per membership and
// per session: what one node holds for presence, whatever the number of
// nodes. Each group's history of deltas for resume (--history, bounded per
// group) is left out: the index here keeps one. Run it with -benchtime=1x.
func BenchmarkIndexMemory(b *testing.B) {
	const users, groups, perUser = 100_000, 1_000, 10
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for range b.N {
		base := heap()
		x, put := benchIndex(b, 1)
		for u := range users {
			for k := range perUser {
				put(membership.MemberKey(fmt.Sprintf("g%d", (u*perUser+k)%groups), fmt.Sprintf("u%d", u)), membership.Member{})
			}
		}
		x.markLoaded()
		withMembers := heap()
		for u := 0; u < users; u += 2 {
			put(sessionKey(fmt.Sprintf("u%d", u), "s"), sessionRecord{Node: "n", Inst: "i", Status: protocol.StatusOnline})
		}
		withSessions := heap()
		if s := x.snapshot("g0"); s.Total != users*perUser/groups {
			b.Fatalf("group g0 has %d members", s.Total)
		}
		b.ReportMetric(float64(withMembers-base)/(users*perUser), "B/membership")
		b.ReportMetric(float64(withSessions-withMembers)/(users/2), "B/session")
		runtime.KeepAlive(x)
	}
}

// BenchmarkStats100k reads the index's Stats with 100,000 sessions, as a
// metrics scrape does; the index's lock is held meanwhile.
func BenchmarkStats100k(b *testing.B) {
	x, put := benchIndex(b, DefaultHistory)
	for i := range 100_000 {
		u := fmt.Sprintf("u%d", i)
		put(sessionKey(u, "s"), sessionRecord{User: u, Session: "s", Node: "n", Inst: "i", Status: protocol.StatusOnline})
	}
	x.markLoaded()
	b.ResetTimer()
	for b.Loop() {
		if st := x.stats(); st.Sessions != 100_000 {
			b.Fatalf("%d sessions", st.Sessions)
		}
	}
}

// BenchmarkMergeRuns merges the queue of a subscriber that fell behind
// while 1,000 members of its group came online, 25 in each of 40 windows
// (join10k): one batch of the 1,000 changes comes out.
func BenchmarkMergeRuns(b *testing.B) {
	batches := make([]Batch, 40)
	for i := range batches {
		bt := Batch{Group: "pb-g0", Rev: uint64(20000 + 25*i + 24), Online: 25 * (i + 1), Total: 10000}
		for k := range 25 {
			bt.Changes = append(bt.Changes, Delta{User: "pb-u" + strconv.Itoa(25*i+k), Status: protocol.StatusOnline,
				Since: time.UnixMilli(1765152000000), Rev: uint64(20000 + 25*i + k)})
		}
		batches[i] = bt
	}
	q := make([]Batch, len(batches))
	b.ReportAllocs()
	for b.Loop() {
		copy(q, batches)
		if out := mergeRuns(q); len(out) != 1 || len(out[0].Changes) != 1000 {
			b.Fatalf("%d batches", len(out))
		}
	}
}
