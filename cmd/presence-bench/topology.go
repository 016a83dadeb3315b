package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// GroupSpec is Count groups of Size members each, written COUNTxSIZE.
type GroupSpec struct {
	Count int `json:"count"`
	Size  int `json:"size"`
}

// parseGroups reads a comma-separated list of COUNTxSIZE, e.g. "1x10000" or
// "10x1000,100x10".
func parseGroups(s string) ([]GroupSpec, error) {
	var out []GroupSpec
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, sz, ok := strings.Cut(part, "x")
		if !ok {
			return nil, fmt.Errorf("%w: --groups %q: want COUNTxSIZE", errConfig, part)
		}
		count, err1 := strconv.Atoi(c)
		size, err2 := strconv.Atoi(sz)
		if err1 != nil || err2 != nil || count < 1 || size < 1 {
			return nil, fmt.Errorf("%w: --groups %q: want positive COUNTxSIZE", errConfig, part)
		}
		out = append(out, GroupSpec{Count: count, Size: size})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --groups is empty", errConfig)
	}
	return out, nil
}

func formatGroups(gs []GroupSpec) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = fmt.Sprintf("%dx%d", g.Count, g.Size)
	}
	return strings.Join(parts, ",")
}

// Topology is the users, groups and connections of a run. Groups are
// disjoint: group j holds the next Size users after group j-1's. Connection
// i acts as user i mod Users(); it subscribes to its user's group when the
// user is among the group's first Subscribers members (0: every member).
//
// Parent and workers derive the same plan from the same Topology, so only
// the Topology travels to the workers.
type Topology struct {
	Prefix      string      `json:"prefix"`
	Groups      []GroupSpec `json:"groups"`
	Conns       int         `json:"conns"`
	Subscribers int         `json:"subscribers"`
	// Publishers is how many users the status changes rotate over; change
	// s is made by publisher s mod Publishers.
	Publishers int `json:"publishers"`
}

// plan is a Topology expanded for lookups.
type plan struct {
	Topology
	groupStart []int   // first user of each group
	groupSize  []int   // members of each group
	userGroup  []int32 // group of each user
	userRank   []int32 // position of each user in its group
	subs       []int   // subscribing connections of each group
	publishers []int   // user index of each publisher
}

func newPlan(t Topology) (*plan, error) {
	p := &plan{Topology: t}
	for _, g := range t.Groups {
		for range g.Count {
			start := len(p.userGroup)
			p.groupStart = append(p.groupStart, start)
			p.groupSize = append(p.groupSize, g.Size)
			gi := int32(len(p.groupStart) - 1)
			for r := range g.Size {
				p.userGroup = append(p.userGroup, gi)
				p.userRank = append(p.userRank, int32(r))
			}
		}
	}
	if len(p.userGroup) == 0 {
		return nil, fmt.Errorf("%w: no users", errConfig)
	}
	if t.Conns < 0 || t.Subscribers < 0 || t.Publishers < 0 {
		return nil, fmt.Errorf("%w: negative count", errConfig)
	}
	p.subs = make([]int, len(p.groupStart))
	for i := range t.Conns {
		if g, ok := p.subscribes(i); ok {
			p.subs[g]++
		}
	}
	// Publishers go round-robin over the groups so that every group sees
	// changes, and within a group over its members.
	want := min(t.Publishers, len(p.userGroup))
	for r := 0; len(p.publishers) < want; r++ {
		for g := range p.groupStart {
			if r < p.groupSize[g] && len(p.publishers) < want {
				p.publishers = append(p.publishers, p.groupStart[g]+r)
			}
		}
	}
	return p, nil
}

// Users is the number of users.
func (p *plan) Users() int { return len(p.userGroup) }

// NumGroups is the number of groups.
func (p *plan) NumGroups() int { return len(p.groupStart) }

func (p *plan) userID(u int) string  { return p.Prefix + "u" + strconv.Itoa(u) }
func (p *plan) groupID(g int) string { return p.Prefix + "g" + strconv.Itoa(g) }

// connUser is the user index connection i acts as.
func (p *plan) connUser(i int) int { return i % len(p.userGroup) }

// subscribes reports whether connection i subscribes, and to which group.
func (p *plan) subscribes(i int) (group int, ok bool) {
	u := p.connUser(i)
	g := int(p.userGroup[u])
	if p.Subscribers > 0 && int(p.userRank[u]) >= p.Subscribers {
		return g, false
	}
	return g, true
}

// largestGroup returns the index of the group with the most members.
func (p *plan) largestGroup() int {
	best := 0
	for g, n := range p.groupSize {
		if n > p.groupSize[best] {
			best = g
		}
	}
	return best
}

// publisher returns the user that makes change seq.
func (p *plan) publisher(seq int) int { return p.publishers[seq%len(p.publishers)] }

// expected is how many subscribers receive change seq.
func (p *plan) expected(seq int) int { return p.subs[p.userGroup[p.publisher(seq)]] }

// Subscriptions is the number of subscribing connections.
func (p *plan) Subscriptions() int {
	n := 0
	for _, s := range p.subs {
		n += s
	}
	return n
}

// writeImport writes the NDJSON import of every group, user and member.
func (p *plan) writeImport(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for g := range p.groupStart {
		fmt.Fprintf(bw, `{"kind":"group","id":%q,"name":%q}`+"\n", p.groupID(g), "bench group "+strconv.Itoa(g))
	}
	for u := range p.userGroup {
		id := p.userID(u)
		fmt.Fprintf(bw, `{"kind":"user","id":%q,"username":%q}`+"\n", id, id)
	}
	for u, g := range p.userGroup {
		fmt.Fprintf(bw, `{"kind":"member","groupId":%q,"userId":%q}`+"\n", p.groupID(int(g)), p.userID(u))
	}
	return bw.Flush()
}

// importLines is how many lines writeImport writes.
func (p *plan) importLines() int { return len(p.groupStart) + 2*len(p.userGroup) }
