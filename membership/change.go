package membership

import (
	"encoding/json"
	"strings"
)

// Kind names what a Change is about.
type Kind string

// Kinds of change.
const (
	KindUser   Kind = "user"
	KindGroup  Kind = "group"
	KindMember Kind = "member"
	KindRole   Kind = "role"
	KindToken  Kind = "token"
)

// Change is one applied change of the membership bucket, in bucket order.
// Exactly one of the value pointers matching Kind is set; on a delete it
// holds the value that was removed.
type Change struct {
	Rev     uint64
	Kind    Kind
	Deleted bool
	User    *User
	Group   *Group
	Member  *Member
	Role    *Role
	Token   *Token
}

// apply records one KV entry in the index and returns the change it made,
// or ok=false when the entry is not a model record or changes nothing.
// A value that fails to decode is skipped, never fatal: one bad record must
// not stop a node from loading.
func (x *Index) apply(key string, value []byte, rev uint64, deleted bool) (c Change, ok bool, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if rev > x.rev {
		x.rev = rev
	}
	c.Rev, c.Deleted = rev, deleted
	switch {
	case strings.HasPrefix(key, prefixUsers):
		id := key[len(prefixUsers):]
		old, had := x.users[id]
		if had {
			delete(x.usersBySeq, old.v.Seq)
			if x.usersByName[old.v.Username] == id {
				delete(x.usersByName, old.v.Username)
			}
		}
		if deleted {
			if !had {
				return c, false, nil
			}
			delete(x.users, id)
			x.userIDs = nil
			c.Kind, c.User = KindUser, &old.v
			return c, true, nil
		}
		var u User
		if err := json.Unmarshal(value, &u); err != nil {
			return c, false, err
		}
		x.users[id] = entry[User]{u, rev}
		x.usersBySeq[u.Seq] = id
		x.usersByName[u.Username] = id
		if !had {
			x.userIDs = nil
		}
		c.Kind, c.User = KindUser, &u
	case strings.HasPrefix(key, prefixGroups):
		id := key[len(prefixGroups):]
		old, had := x.groups[id]
		if had {
			delete(x.groupsBySeq, old.v.Seq)
		}
		if deleted {
			if !had {
				return c, false, nil
			}
			delete(x.groups, id)
			x.groupIDs = nil
			c.Kind, c.Group = KindGroup, &old.v
			return c, true, nil
		}
		var g Group
		if err := json.Unmarshal(value, &g); err != nil {
			return c, false, err
		}
		x.groups[id] = entry[Group]{g, rev}
		x.groupsBySeq[g.Seq] = id
		if !had {
			x.groupIDs = nil
		}
		c.Kind, c.Group = KindGroup, &g
	case strings.HasPrefix(key, prefixMembers):
		gid, uid, valid := ParseMemberKey(key)
		if !valid {
			return c, false, nil
		}
		ms := x.members[gid]
		old, had := ms[uid]
		if deleted {
			if !had {
				return c, false, nil
			}
			delete(ms, uid)
			if len(ms) == 0 {
				delete(x.members, gid)
			}
			delete(x.userGroups[uid], gid)
			if len(x.userGroups[uid]) == 0 {
				delete(x.userGroups, uid)
			}
			c.Kind, c.Member = KindMember, &old.v
			return c, true, nil
		}
		var m Member
		if err := json.Unmarshal(value, &m); err != nil {
			return c, false, err
		}
		if ms == nil {
			ms = map[string]entry[Member]{}
			x.members[gid] = ms
		}
		ms[uid] = entry[Member]{m, rev}
		ug := x.userGroups[uid]
		if ug == nil {
			ug = map[string]struct{}{}
			x.userGroups[uid] = ug
		}
		ug[gid] = struct{}{}
		c.Kind, c.Member = KindMember, &m
	case strings.HasPrefix(key, prefixRoles):
		id := key[len(prefixRoles):]
		old, had := x.roles[id]
		if deleted {
			if !had {
				return c, false, nil
			}
			delete(x.roles, id)
			c.Kind, c.Role = KindRole, &old.v
			return c, true, nil
		}
		var r Role
		if err := json.Unmarshal(value, &r); err != nil {
			return c, false, err
		}
		x.roles[id] = entry[Role]{r, rev}
		c.Kind, c.Role = KindRole, &r
	case strings.HasPrefix(key, prefixTokens):
		id := key[len(prefixTokens):]
		old, had := x.tokens[id]
		if had {
			delete(x.tokenHashes, old.v.Hash)
		}
		if deleted {
			if !had {
				return c, false, nil
			}
			delete(x.tokens, id)
			c.Kind, c.Token = KindToken, &old.v
			return c, true, nil
		}
		var t Token
		if err := json.Unmarshal(value, &t); err != nil {
			return c, false, err
		}
		x.tokens[id] = entry[Token]{t, rev}
		x.tokenHashes[t.Hash] = id
		c.Kind, c.Token = KindToken, &t
	case strings.HasPrefix(key, prefixSeq):
		kind := key[len(prefixSeq):]
		if deleted {
			delete(x.seqs, kind)
			return c, false, nil
		}
		var n int64
		if err := json.Unmarshal(value, &n); err != nil {
			return c, false, err
		}
		x.seqs[kind] = entry[int64]{n, rev}
		return c, false, nil
	default:
		return c, false, nil
	}
	return c, true, nil
}
