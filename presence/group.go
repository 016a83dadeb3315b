package presence

import (
	"slices"
	"strings"

	"github.com/presenced/presenced/protocol"
)

// group is the presence of one group: its members, how many of them are
// present, the deltas kept for resume and its subscribers.
type group struct {
	id string
	// members maps each member to the revision that made it one.
	members map[string]uint64
	sorted  []*userState // members by id (sorted once loading is done)
	online  int
	rev     uint64 // last revision that changed the group's presence or counts
	hist    history

	// Fan-out state (see fanout.go).
	pending       []Delta
	countsChanged bool
	dirty         bool
	subs          []*Subscriber // full subscribers
	countSubs     []*Subscriber // counts-only subscribers and count watchers
}

// groupLocked returns the group, creating it (complete for deltas after
// the current revision) if needed.
func (x *index) groupLocked(id string) *group {
	g := x.groups[id]
	if g == nil {
		g = &group{id: id, members: make(map[string]uint64), rev: x.rev}
		g.hist.max = x.history
		g.hist.reset(x.rev)
		x.groups[id] = g
	}
	return g
}

func (x *index) addMember(en entry, gid, uid string) {
	g := x.groups[gid]
	if g == nil {
		g = x.groupLocked(gid)
		// Deltas of an earlier life of this group, if any, are gone.
		g.hist.reset(en.rev - 1)
	}
	if _, ok := g.members[uid]; ok {
		return // a role change: presence is unaffected
	}
	u := x.user(uid)
	g.members[uid] = en.rev
	if gone := x.gone[gid]; gone != nil {
		delete(gone, uid)
		if len(gone) == 0 {
			delete(x.gone, gid)
		}
	}
	u.groups = append(u.groups, g)
	if x.loaded {
		i, _ := slices.BinarySearchFunc(g.sorted, uid, func(m *userState, id string) int { return strings.Compare(m.id, id) })
		g.sorted = slices.Insert(g.sorted, i, u)
	} else {
		g.sorted = append(g.sorted, u)
	}
	g.rev = en.rev
	g.countsChanged = true
	if u.status.Online() {
		g.online++
		x.emit(g, Delta{User: uid, Status: u.status, Text: u.text, Since: u.since, Rev: en.rev})
	} else {
		x.markDirty(g)
	}
}

func (x *index) removeMember(en entry, gid, uid string) {
	gone := x.gone[gid]
	if gone == nil {
		gone = make(map[string]uint64)
		x.gone[gid] = gone
	}
	gone[uid] = en.rev
	g := x.groups[gid]
	if g == nil {
		return
	}
	if _, ok := g.members[uid]; !ok {
		return
	}
	u := x.users[uid]
	delete(g.members, uid)
	if i := slices.Index(u.groups, g); i >= 0 {
		u.groups = slices.Delete(u.groups, i, i+1)
	}
	if i := slices.Index(g.sorted, u); i >= 0 {
		g.sorted = slices.Delete(g.sorted, i, i+1)
	}
	g.rev = en.rev
	g.countsChanged = true
	if u.status.Online() {
		g.online--
		x.emit(g, Delta{User: uid, Status: protocol.StatusOffline, Rev: en.rev, Removed: true})
	} else {
		x.markDirty(g)
	}
	x.maybeDropGroup(g)
}

// emit records a delta of g: into the history, and into the pending batch
// if anyone subscribes.
func (x *index) emit(g *group, d Delta) {
	g.rev = d.Rev
	if !x.loaded {
		return
	}
	g.hist.push(d)
	x.fan.stats.deltas.Add(1)
	if len(g.subs) > 0 {
		g.pending = append(g.pending, d)
	}
	x.markDirty(g)
}

// maybeDropGroup forgets a group nobody is in or watches.
func (x *index) maybeDropGroup(g *group) {
	if len(g.members) == 0 && len(g.subs) == 0 && len(g.countSubs) == 0 && !g.dirty {
		delete(x.groups, g.id)
	}
}
