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
	a := c.members("g", snap(5, protocol.StatusOnline))
	if want := appendMembers(nil, snap(5, protocol.StatusOnline).Members); !bytes.Equal(a, want) {
		t.Fatal("cached encoding differs from a fresh one")
	}
	// Same revision: served from the cache even if given other contents.
	if b := c.members("g", snap(5, protocol.StatusAway)); !bytes.Equal(a, b) {
		t.Fatal("same revision not served from the cache")
	}
	// A new revision or epoch replaces the entry.
	if b := c.members("g", snap(6, protocol.StatusAway)); bytes.Equal(a, b) || !bytes.Contains(b, []byte(`"away"`)) {
		t.Fatal("new revision served stale members")
	}
	other := snap(6, protocol.StatusBusy)
	other.Epoch = "f"
	if b := c.members("g", other); !bytes.Contains(b, []byte(`"busy"`)) {
		t.Fatal("new epoch served stale members")
	}
	// Small groups are not cached.
	small := presence.Snapshot{Group: "s", Rev: 1, Members: snap(1, protocol.StatusOnline).Members[:3]}
	c.members("s", small)
	if _, ok := c.m["s"]; ok {
		t.Fatal("small group cached")
	}
}
