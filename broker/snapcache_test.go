package broker

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

func TestSnapCache(t *testing.T) {
	snap := func(rev uint64, status protocol.Status) presence.Snapshot {
		s := presence.Snapshot{Group: "g", Rev: rev, Epoch: "e"}
		for i := range 150 {
			s.Members = append(s.Members, presence.MemberStatus{User: fmt.Sprintf("u%03d", i), Status: status, Since: time.UnixMilli(int64(i))})
		}
		return s
	}
	var c snapCache
	members := func(s presence.Snapshot) []byte { return c.appendMembers([]byte("x"), "g", s)[1:] }
	want := appendMembers(nil, snap(5, protocol.StatusOnline).Members)
	// The first ask at a revision is encoded, not cached; the second is
	// cached.
	for i := range 2 {
		if a := members(snap(5, protocol.StatusOnline)); !bytes.Equal(a, want) {
			t.Fatalf("ask %d: encoding differs from a fresh one", i+1)
		}
		if cached := c.m["g"].body != nil; cached != (i == 1) {
			t.Fatalf("after ask %d: cached = %v", i+1, cached)
		}
	}
	// Same revision: served from the cache even if given other contents.
	if b := members(snap(5, protocol.StatusAway)); !bytes.Equal(b, want) {
		t.Fatal("same revision not served from the cache")
	}
	// A new revision or epoch replaces the entry.
	if b := members(snap(6, protocol.StatusAway)); !bytes.Contains(b, []byte(`"away"`)) || bytes.Contains(b, []byte(`"online"`)) {
		t.Fatal("new revision served stale members")
	}
	members(snap(6, protocol.StatusAway))
	other := snap(6, protocol.StatusBusy)
	other.Epoch = "f"
	if b := members(other); !bytes.Contains(b, []byte(`"busy"`)) {
		t.Fatal("new epoch served stale members")
	}
	// Small groups are not cached.
	small := presence.Snapshot{Group: "s", Rev: 1, Members: snap(1, protocol.StatusOnline).Members[:3]}
	c.appendMembers(nil, "s", small)
	c.appendMembers(nil, "s", small)
	if _, ok := c.m["s"]; ok {
		t.Fatal("small group cached")
	}
}

// BenchmarkEncodeSnapshot100 encodes the snapshot of a group of 100
// members at a new revision each time, as members come online one by one
// and subscribe (idle19900): what it allocates is the frame.
func BenchmarkEncodeSnapshot100(b *testing.B) {
	s := &Server{}
	snap := benchSnapshot(100)
	b.ReportAllocs()
	for b.Loop() {
		snap.Rev++
		if f := s.appendSnapshot(make([]byte, 0, snapshotSize(snap.Group, snap)), 1, snap.Group, snap); len(f) < 100*60 {
			b.Fatalf("frame of %d bytes", len(f))
		}
	}
}

// benchSnapshot is a snapshot of a group of n members, all online.
func benchSnapshot(n int) presence.Snapshot {
	snap := presence.Snapshot{Group: "pb-g17", Epoch: "e", Online: n, Total: n}
	for i := range n {
		snap.Members = append(snap.Members, presence.MemberStatus{
			User: fmt.Sprintf("pb-u%06d", i), Status: protocol.StatusOnline, Since: time.UnixMilli(1795000000000 + int64(i))})
	}
	return snap
}
