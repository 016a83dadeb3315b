package client

import (
	"maps"
	"slices"
	"strings"

	"github.com/presenced/presenced/protocol"
)

// group is the local view of one subscribed group.
type group struct {
	countsOnly bool
	rev        uint64
	epoch      string
	online     int
	total      int
	members    map[string]protocol.Member // nil for counts only
}

// Snapshot is the state of a group as a subscribe returned it.
type Snapshot struct {
	Group string
	// Rev is the revision the snapshot is consistent with.
	Rev   uint64
	Epoch string
	// Fresh is true when a resume was asked and could not be honoured.
	Fresh  bool
	Online int
	Total  int
	// Members holds every member, sorted by user.
	Members []protocol.Member
}

func newGroupFromSnapshot(f *protocol.ServerFrame) *group {
	g := &group{rev: f.Rev, epoch: f.Epoch, online: f.Online, total: f.Total,
		members: make(map[string]protocol.Member, len(f.Members))}
	for _, m := range f.Members {
		m.Removed = false
		g.members[m.User] = m
	}
	return g
}

// apply applies changes that come with a frame at revision rev and returns
// those that were new: a change whose revision is not above the group's is
// a replay and is skipped.
func (g *group) apply(rev uint64, online, total int, changes []protocol.Member) []protocol.Member {
	base := g.rev
	applied := make([]protocol.Member, 0, len(changes))
	for _, m := range changes {
		if m.Rev != 0 && m.Rev <= base {
			continue
		}
		applied = append(applied, m)
		if m.Removed {
			delete(g.members, m.User)
			continue
		}
		g.members[m.User] = m
	}
	g.rev = max(g.rev, rev)
	g.online, g.total = online, total
	return applied
}

func (g *group) sortedMembers() []protocol.Member {
	return slices.SortedFunc(maps.Values(g.members), func(a, b protocol.Member) int {
		return strings.Compare(a.User, b.User)
	})
}

// Members returns the members of a subscribed group, sorted by user, as the
// snapshot and the deltas applied so far make them; nil when the group is
// not subscribed or only its counts are.
func (c *Client) Members(group string) []protocol.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[group]
	if g == nil || g.countsOnly {
		return nil
	}
	return g.sortedMembers()
}

// Counts returns the counts and revision of a subscribed group.
func (c *Client) Counts(group string) (protocol.GroupCount, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[group]
	if g == nil {
		return protocol.GroupCount{}, false
	}
	return protocol.GroupCount{Group: group, Online: g.online, Total: g.total, Rev: g.rev}, true
}

// Groups returns the subscribed groups, sorted.
func (c *Client) Groups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.groups))
}
