package presence

import (
	"slices"
	"strings"
	"time"

	"github.com/presenced/presenced/protocol"
)

// UserStatus is one user's presence as queries return it.
type UserStatus struct {
	User   string
	Status protocol.Status
	Text   string
	// Since is when the current status began (zero when offline).
	Since time.Time
	// LastSeen is when the user was last present: the latest session
	// write while present, the time they went offline when offline. Zero
	// if unknown since the presence stream's epoch.
	LastSeen time.Time
	// Changed is the time of the last status change.
	Changed time.Time
	// Rev is the revision of the last change of status or text.
	Rev uint64
}

// MemberStatus is a present member in a snapshot.
type MemberStatus struct {
	User   string
	Status protocol.Status
	Text   string
	Since  time.Time
}

// Snapshot is the presence of one group, consistent with revision Rev.
type Snapshot struct {
	Group string
	Rev   uint64
	// Epoch names the presence stream the revision belongs to.
	Epoch         string
	Online, Total int
	// Members are the members that are not offline, sorted by user id.
	// Nil for a counts-only subscription.
	Members []MemberStatus
	// Fresh marks a snapshot given instead of a requested resume.
	Fresh bool
}

// GroupCount is a group's online and total member counts.
type GroupCount struct {
	Group         string
	Online, Total int
	Rev           uint64
}

func (x *index) userStatusLocked(id string) UserStatus {
	u := x.users[id]
	if u == nil {
		return UserStatus{User: id, Status: protocol.StatusOffline}
	}
	us := UserStatus{User: id, Status: u.status, Text: u.text, Since: u.since,
		LastSeen: u.lastSeen, Changed: u.changed, Rev: u.rev}
	for _, s := range u.sessions {
		if x.counted(s) && s.created.After(us.LastSeen) && u.status.Online() {
			us.LastSeen = s.created
		}
	}
	return us
}

// status returns one user's presence.
func (x *index) status(user string) UserStatus {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.userStatusLocked(user)
}

// statuses returns the presence of many users, in the order asked.
func (x *index) statuses(users []string) []UserStatus {
	out := make([]UserStatus, len(users))
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i, u := range users {
		out[i] = x.userStatusLocked(u)
	}
	return out
}

// changedSince returns every user whose status changed at or after t,
// sorted by change time.
func (x *index) changedSince(t time.Time) []UserStatus {
	x.mu.RLock()
	var out []UserStatus
	for id, u := range x.users {
		if !u.changed.IsZero() && !u.changed.Before(t) {
			out = append(out, x.userStatusLocked(id))
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b UserStatus) int {
		if c := a.Changed.Compare(b.Changed); c != 0 {
			return c
		}
		return strings.Compare(a.User, b.User)
	})
	return out
}

// whereNow returns the groups in which the user is present, sorted.
func (x *index) whereNow(user string) []string {
	x.mu.RLock()
	u := x.users[user]
	if u == nil || !u.status.Online() {
		x.mu.RUnlock()
		return nil
	}
	out := make([]string, len(u.groups))
	for i, g := range u.groups {
		out[i] = g.id
	}
	x.mu.RUnlock()
	slices.Sort(out)
	return out
}

func countOf(g *group) GroupCount {
	return GroupCount{Group: g.id, Online: g.online, Total: len(g.members), Rev: g.rev}
}

// counts returns the counts of every group that has members, sorted.
func (x *index) counts() []GroupCount {
	x.mu.RLock()
	out := make([]GroupCount, 0, len(x.groups))
	for _, g := range x.groups {
		if len(g.members) > 0 {
			out = append(out, countOf(g))
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, compareCounts)
	return out
}

func compareCounts(a, b GroupCount) int { return strings.Compare(a.Group, b.Group) }

// groupCount returns one group's counts, false if it has no members.
func (x *index) groupCount(id string) (GroupCount, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	g := x.groups[id]
	if g == nil || len(g.members) == 0 {
		return GroupCount{Group: id}, false
	}
	return countOf(g), true
}

// snapshot returns the presence of one group.
func (x *index) snapshot(id string) Snapshot {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.snapshotLocked(id, false)
}

func (x *index) snapshotLocked(id string, countsOnly bool) Snapshot {
	s := Snapshot{Group: id, Rev: x.rev, Epoch: x.epoch}
	g := x.groups[id]
	if g == nil {
		return s
	}
	s.Online, s.Total = g.online, len(g.members)
	if countsOnly || g.online == 0 {
		return s
	}
	s.Members = make([]MemberStatus, 0, g.online)
	for _, u := range g.sorted {
		if u.status.Online() {
			s.Members = append(s.Members, MemberStatus{User: u.id, Status: u.status, Text: u.text, Since: u.since})
		}
	}
	return s
}

// currentRev is the revision of the last applied entry.
func (x *index) currentRev() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.rev
}

// Status returns one user's presence.
func (e *Engine) Status(user string) UserStatus { return e.x.status(user) }

// Statuses returns the presence of many users, in the order asked.
func (e *Engine) Statuses(users []string) []UserStatus { return e.x.statuses(users) }

// ChangedSince returns every user whose status (offline included) last
// changed at or after t, oldest change first.
func (e *Engine) ChangedSince(t time.Time) []UserStatus { return e.x.changedSince(t) }

// WhereNow returns the groups in which user is present (not offline).
func (e *Engine) WhereNow(user string) []string { return e.x.whereNow(user) }

// Counts returns the online and total counts of every group with members.
func (e *Engine) Counts() []GroupCount { return e.x.counts() }

// GroupCount returns one group's counts; false if it has no members.
func (e *Engine) GroupCount(group string) (GroupCount, bool) { return e.x.groupCount(group) }

// Snapshot returns the present members of group, consistent with the
// revision it names.
func (e *Engine) Snapshot(group string) Snapshot { return e.x.snapshot(group) }

// Rev is the revision of the last entry the index applied.
func (e *Engine) Rev() uint64 { return e.x.currentRev() }
