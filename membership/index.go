package membership

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Index is the in-memory view of the membership bucket, kept current by the
// store's watch. All methods are safe for concurrent use and return copies.
type Index struct {
	mu sync.RWMutex
	// mu guards the following fields.
	users       map[string]entry[User]
	usersBySeq  map[int64]string
	usersByName map[string]string
	groups      map[string]entry[Group]
	groupsBySeq map[int64]string
	members     map[string]map[string]entry[Member] // group → user
	userGroups  map[string]map[string]struct{}      // user → groups
	roles       map[string]entry[Role]
	tokens      map[string]entry[Token]
	tokenHashes map[string]string // hash → token id
	seqs        map[string]entry[int64]
	rev         uint64   // last applied revision
	userIDs     []string // sorted ids of users; nil when stale
	groupIDs    []string // sorted ids of groups; nil when stale
}

// entry is a stored value with the revision that wrote it.
type entry[T any] struct {
	v   T
	rev uint64
}

func newIndex() *Index {
	return &Index{
		users:       map[string]entry[User]{},
		usersBySeq:  map[int64]string{},
		usersByName: map[string]string{},
		groups:      map[string]entry[Group]{},
		groupsBySeq: map[int64]string{},
		members:     map[string]map[string]entry[Member]{},
		userGroups:  map[string]map[string]struct{}{},
		roles:       map[string]entry[Role]{},
		tokens:      map[string]entry[Token]{},
		tokenHashes: map[string]string{},
		seqs:        map[string]entry[int64]{},
	}
}

// Rev returns the revision of the last change applied to the index.
func (x *Index) Rev() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.rev
}

// User returns the user with the given id.
func (x *Index) User(id string) (User, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.users[id]
	return e.v, ok
}

// UserBySeq returns the user with the given numeric alias.
func (x *Index) UserBySeq(seq int64) (User, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.users[x.usersBySeq[seq]]
	return e.v, ok
}

// UserByUsername returns the user with the given username.
func (x *Index) UserByUsername(name string) (User, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	id, ok := x.usersByName[name]
	if !ok {
		return User{}, false
	}
	e, ok := x.users[id]
	return e.v, ok
}

// Users returns every user, sorted by id.
func (x *Index) Users() []User {
	return x.ListUsers("", 0)
}

// ListUsers returns up to limit users (0 = all) with ids greater than after,
// sorted by id: the cursor pagination of the REST API.
func (x *Index) ListUsers(after string, limit int) []User {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.userIDs == nil {
		x.userIDs = sortedKeys(x.users)
	}
	ids := page(x.userIDs, after, limit)
	out := make([]User, len(ids))
	for i, id := range ids {
		out[i] = x.users[id].v
	}
	return out
}

// Group returns the group with the given id.
func (x *Index) Group(id string) (Group, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.groups[id]
	return e.v, ok
}

// GroupBySeq returns the group with the given numeric alias.
func (x *Index) GroupBySeq(seq int64) (Group, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.groups[x.groupsBySeq[seq]]
	return e.v, ok
}

// Groups returns every group, sorted by id.
func (x *Index) Groups() []Group { return x.ListGroups("", 0) }

// ListGroups returns up to limit groups (0 = all) with ids greater than
// after, sorted by id.
func (x *Index) ListGroups(after string, limit int) []Group {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.groupIDs == nil {
		x.groupIDs = sortedKeys(x.groups)
	}
	ids := page(x.groupIDs, after, limit)
	out := make([]Group, len(ids))
	for i, id := range ids {
		out[i] = x.groups[id].v
	}
	return out
}

// Member returns one membership.
func (x *Index) Member(group, user string) (Member, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.members[group][user]
	return e.v, ok
}

// Members returns the members of a group, sorted by Seq (join order).
func (x *Index) Members(group string) []Member {
	x.mu.RLock()
	ms := x.members[group]
	out := make([]Member, 0, len(ms))
	for _, e := range ms {
		out = append(out, e.v)
	}
	x.mu.RUnlock()
	sortMembers(out)
	return out
}

// MemberCount returns how many members a group has.
func (x *Index) MemberCount(group string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.members[group])
}

// GroupsOf returns the memberships of a user, sorted by group id.
func (x *Index) GroupsOf(user string) []Member {
	x.mu.RLock()
	out := make([]Member, 0, len(x.userGroups[user]))
	for g := range x.userGroups[user] {
		out = append(out, x.members[g][user].v)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.GroupID, b.GroupID) })
	return out
}

// IsMember reports whether user belongs to group.
func (x *Index) IsMember(group, user string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.members[group][user]
	return ok
}

// Role returns the role with the given id.
func (x *Index) Role(id string) (Role, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.roles[id]
	return e.v, ok
}

// Roles returns every role, sorted by id.
func (x *Index) Roles() []Role {
	x.mu.RLock()
	out := make([]Role, 0, len(x.roles))
	for _, e := range x.roles {
		out = append(out, e.v)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b Role) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// UsersInRole returns the holders of a global role, sorted by username.
func (x *Index) UsersInRole(role string) []User {
	x.mu.RLock()
	var out []User
	for _, e := range x.users {
		if e.v.HasRole(role) {
			out = append(out, e.v)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b User) int {
		return cmp.Or(cmp.Compare(a.Username, b.Username), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// MembersInRole returns the memberships holding a group-scoped role in group,
// or in any group when group is "", sorted by group id then Seq.
func (x *Index) MembersInRole(role, group string) []Member {
	x.mu.RLock()
	var out []Member
	collect := func(ms map[string]entry[Member]) {
		for _, e := range ms {
			if e.v.HasRole(role) {
				out = append(out, e.v)
			}
		}
	}
	if group != "" {
		collect(x.members[group])
	} else {
		for _, ms := range x.members {
			collect(ms)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.GroupID, b.GroupID), cmp.Compare(a.Seq, b.Seq))
	})
	return out
}

// Token returns the token with the given id.
func (x *Index) Token(id string) (Token, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.tokens[id]
	return e.v, ok
}

// TokenByHash returns the token whose secret hashes to hash.
func (x *Index) TokenByHash(hash string) (Token, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.tokens[x.tokenHashes[hash]]
	return e.v, ok
}

// Tokens returns every token, sorted by id.
func (x *Index) Tokens() []Token {
	x.mu.RLock()
	out := make([]Token, 0, len(x.tokens))
	for _, e := range x.tokens {
		out = append(out, e.v)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b Token) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Counts returns how many users, groups and memberships the index holds.
func (x *Index) Counts() (users, groups, members int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, ms := range x.members {
		members += len(ms)
	}
	return len(x.users), len(x.groups), members
}

func (x *Index) userRev(id string) (User, uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.users[id]
	return e.v, e.rev, ok
}

func (x *Index) memberRev(group, user string) (Member, uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.members[group][user]
	return e.v, e.rev, ok
}

func (x *Index) groupRev(id string) (Group, uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.groups[id]
	return e.v, e.rev, ok
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.UserID, b.UserID))
	})
}

func sortedKeys[T any](m map[string]T) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func page(ids []string, after string, limit int) []string {
	i := 0
	if after != "" {
		i, _ = slices.BinarySearch(ids, after)
		if i < len(ids) && ids[i] == after {
			i++
		}
	}
	ids = ids[i:]
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids
}

// maxIssuers bounds the walk up a token's issuers: deeper chains are
// refused (CanManageToken walks as far).
const maxIssuers = 64

// standing says why t may not be used now, nil if it may: its user is
// deleted or deactivated, or the token that issued it, or any further up,
// is gone or bound to such a user. A token works only while the token that
// issued it does: until is the earliest expiry of t and its issuers, zero
// when none expires.
func (x *Index) standing(t Token) (until time.Time, err error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for hops := 0; ; hops++ {
		if t.UserID != "" {
			if u, ok := x.users[t.UserID]; !ok || !u.v.Active {
				if hops == 0 {
					return time.Time{}, fmt.Errorf("%w: user inactive or deleted", ErrUnauthorized)
				}
				return time.Time{}, fmt.Errorf("%w: issued by a token of a user inactive or deleted", ErrUnauthorized)
			}
		}
		if t.ExpiresAt != nil && (until.IsZero() || t.ExpiresAt.Before(until)) {
			until = *t.ExpiresAt
		}
		if t.IssuedBy == "" {
			return until, nil
		}
		parent, ok := x.tokens[t.IssuedBy]
		if !ok || hops == maxIssuers {
			return time.Time{}, fmt.Errorf("%w: the token that issued it is revoked", ErrUnauthorized)
		}
		t = parent.v
	}
}

// TokensUnder returns the ids of user's tokens and of the tokens they
// issued, directly or further down (bound to any user, or none).
func (x *Index) TokensUnder(user string) []string {
	var out []string
	for _, t := range x.Tokens() {
		if t.UserID == user {
			out = append(out, x.tokenTree(t.ID)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// tokenTree returns id and the ids of the tokens it issued, directly or
// through them, parents before children.
func (x *Index) tokenTree(id string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	children := map[string][]string{}
	for tid, t := range x.tokens {
		if t.v.IssuedBy != "" {
			children[t.v.IssuedBy] = append(children[t.v.IssuedBy], tid)
		}
	}
	out := []string{id}
	for i := 0; i < len(out); i++ {
		kids := children[out[i]]
		slices.Sort(kids)
		out = append(out, kids...)
	}
	return out
}
