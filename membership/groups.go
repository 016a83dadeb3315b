package membership

import (
	"context"
	"fmt"
)

// CreateGroup stores a new group; ErrExists if the id is taken. Zero Type
// is private.
func (s *Store) CreateGroup(ctx context.Context, g Group) (Group, error) {
	if _, ok := s.index.Group(g.ID); ok {
		return Group{}, fmt.Errorf("group %s: %w", g.ID, ErrExists)
	}
	return s.writeGroup(ctx, g, true)
}

// PutGroup creates or replaces a group. Seq and CreatedAt of an existing
// group are kept.
func (s *Store) PutGroup(ctx context.Context, g Group) (Group, error) {
	return s.writeGroup(ctx, g, false)
}

// UpdateGroup applies fn to the current group and stores the result with a
// compare-and-set, trying again on concurrent updates (see contended).
func (s *Store) UpdateGroup(ctx context.Context, id string, fn func(*Group) error) (Group, error) {
	var next Group
	err := s.contended(ctx, groupKey(id), func(ctx context.Context, retry bool) error {
		if retry {
			s.catchUp(ctx, groupKey(id))
		}
		if !s.find(ctx, groupKey(id), func() bool { _, ok := s.index.Group(id); return ok }) {
			return fmt.Errorf("group %s: %w", id, ErrNotFound)
		}
		cur, rev, _ := s.index.groupRev(id)
		next = cur
		if err := fn(&next); err != nil {
			return err
		}
		next.ID, next.Seq, next.CreatedAt = cur.ID, cur.Seq, cur.CreatedAt
		next.UpdatedAt = s.cfg.Now().UTC()
		if err := validateGroup(next); err != nil {
			return err
		}
		_, err := s.put(ctx, groupKey(id), next, &rev)
		return err
	})
	if err != nil {
		return Group{}, err
	}
	return next, nil
}

func (s *Store) writeGroup(ctx context.Context, g Group, create bool) (Group, error) {
	if g.Type == "" {
		g.Type = GroupPrivate
	}
	if err := validateGroup(g); err != nil {
		return Group{}, err
	}
	given := g
	err := s.contended(ctx, groupKey(g.ID), func(ctx context.Context, retry bool) error {
		if retry {
			s.catchUp(ctx, groupKey(g.ID))
		}
		g = given
		now := s.cfg.Now().UTC()
		old, rev, exists := s.index.groupRev(g.ID)
		if exists && create {
			return fmt.Errorf("group %s: %w", g.ID, ErrExists)
		}
		if exists {
			g.Seq, g.CreatedAt = old.Seq, old.CreatedAt
		} else {
			if g.Seq == 0 {
				seq, err := s.reserveSeq(ctx, "groups", 1)
				if err != nil {
					return err
				}
				g.Seq = seq
			}
			if g.CreatedAt.IsZero() {
				g.CreatedAt = now
			}
		}
		g.UpdatedAt = now
		// A compare-and-set, the creation included (rev 0): a put of a
		// group another node creates meanwhile reads it and keeps its seq.
		_, err := s.put(ctx, groupKey(g.ID), g, &rev)
		switch {
		case err == ErrExists && create:
			return fmt.Errorf("group %s: %w", g.ID, ErrExists)
		case err == ErrExists:
			return ErrConflict
		}
		return err
	})
	if err != nil {
		return Group{}, err
	}
	return g, nil
}

// DeleteGroup removes a group and all its memberships.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	if !s.find(ctx, groupKey(id), func() bool { _, ok := s.index.Group(id); return ok }) {
		return fmt.Errorf("group %s: %w", id, ErrNotFound)
	}
	for _, m := range s.index.Members(id) {
		if err := s.del(ctx, MemberKey(id, m.UserID)); err != nil {
			return err
		}
	}
	return s.del(ctx, groupKey(id))
}

// PutMember adds a user to a group or changes their role there. The user and
// the group must exist. Seq and JoinedAt of an existing membership are kept.
func (s *Store) PutMember(ctx context.Context, m Member) (Member, error) {
	if m.Role == "" {
		m.Role = RoleMember
	}
	if err := s.index.validateMember(m); err != nil {
		return Member{}, err
	}
	given, key := m, MemberKey(m.GroupID, m.UserID)
	// A compare-and-set, the creation included: puts of one new membership
	// through several nodes at once agree on the seq the first one gave.
	err := s.contended(ctx, key, func(ctx context.Context, retry bool) error {
		if retry {
			s.catchUp(ctx, key)
		}
		m = given
		if !s.find(ctx, groupKey(m.GroupID), func() bool { _, ok := s.index.Group(m.GroupID); return ok }) {
			return fmt.Errorf("group %s: %w", m.GroupID, ErrNotFound)
		}
		if !s.find(ctx, userKey(m.UserID), func() bool { _, ok := s.index.User(m.UserID); return ok }) {
			return fmt.Errorf("user %s: %w", m.UserID, ErrNotFound)
		}
		old, rev, exists := s.index.memberRev(m.GroupID, m.UserID)
		if exists {
			m.Seq, m.JoinedAt = old.Seq, old.JoinedAt
		} else {
			if m.Seq == 0 {
				seq, err := s.reserveSeq(ctx, "members", 1)
				if err != nil {
					return err
				}
				m.Seq = seq
			}
			if m.JoinedAt.IsZero() {
				m.JoinedAt = s.cfg.Now().UTC()
			}
		}
		_, err := s.put(ctx, key, m, &rev) // rev 0: create
		if err == ErrExists {
			return ErrConflict // created meanwhile through another node: keep its seq
		}
		return err
	})
	if err != nil {
		return Member{}, err
	}
	return m, nil
}

// DeleteMember removes a user from a group.
func (s *Store) DeleteMember(ctx context.Context, group, user string) error {
	if !s.find(ctx, MemberKey(group, user), func() bool { _, ok := s.index.Member(group, user); return ok }) {
		return fmt.Errorf("member %s of %s: %w", user, group, ErrNotFound)
	}
	return s.del(ctx, MemberKey(group, user))
}

// PutRole creates or replaces a custom role. Built-in roles cannot change.
func (s *Store) PutRole(ctx context.Context, r Role) error {
	if err := validateRole(r); err != nil {
		return err
	}
	if old, ok := s.index.Role(r.ID); ok && old.Builtin {
		return invalid("id", "role %q is built in", r.ID)
	}
	r.Builtin = false
	_, err := s.put(ctx, roleKey(r.ID), r, nil)
	return err
}

// DeleteRole removes a custom role. Holders keep the id in their role lists
// until they are next written; lookups of the role fail from now on.
func (s *Store) DeleteRole(ctx context.Context, id string) error {
	r, ok := s.index.Role(id)
	if !ok {
		return fmt.Errorf("role %s: %w", id, ErrNotFound)
	}
	if r.Builtin {
		return invalid("id", "role %q is built in", id)
	}
	return s.del(ctx, roleKey(id))
}
