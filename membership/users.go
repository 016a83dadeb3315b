package membership

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// CreateUser stores a new user; ErrExists if the id is taken. Zero Type is
// "user"; a new user is active unless the caller set Seq to mark an import
// (Active is taken as given then).
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	if _, ok := s.index.User(u.ID); ok {
		return User{}, fmt.Errorf("user %s: %w", u.ID, ErrExists)
	}
	return s.writeUser(ctx, u, true)
}

// PutUser creates or replaces a user. Seq and CreatedAt of an existing user
// are kept.
func (s *Store) PutUser(ctx context.Context, u User) (User, error) {
	return s.writeUser(ctx, u, false)
}

// UpdateUser applies fn to the current user and stores the result with a
// compare-and-set, trying again on concurrent updates (see contended).
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*User) error) (User, error) {
	var next User
	err := s.contended(ctx, userKey(id), func(ctx context.Context, retry bool) error {
		if retry {
			s.catchUp(ctx, userKey(id))
		}
		if !s.find(ctx, userKey(id), func() bool { _, ok := s.index.User(id); return ok }) {
			return fmt.Errorf("user %s: %w", id, ErrNotFound)
		}
		cur, rev, _ := s.index.userRev(id)
		cur.Roles = slices.Clone(cur.Roles)
		next = cur
		if err := fn(&next); err != nil {
			return err
		}
		next.ID, next.Seq, next.CreatedAt = cur.ID, cur.Seq, cur.CreatedAt
		next.UpdatedAt = s.cfg.Now().UTC()
		if err := s.index.validateUser(next); err != nil {
			return err
		}
		renamed := next.Username != cur.Username
		if renamed {
			if err := s.claimName(ctx, next.Username, id); err != nil {
				return err
			}
		}
		_, err := s.put(ctx, userKey(id), next, &rev)
		if err == nil && renamed {
			s.releaseName(ctx, cur.Username, id)
		}
		return err
	})
	if err != nil {
		return User{}, err
	}
	return next, nil
}

func (s *Store) writeUser(ctx context.Context, u User, create bool) (User, error) {
	if u.Type == "" {
		u.Type = UserTypeUser
	}
	if err := s.index.validateUser(u); err != nil {
		return User{}, err
	}
	given := u
	err := s.contended(ctx, userKey(u.ID), func(ctx context.Context, retry bool) error {
		if retry {
			s.catchUp(ctx, userKey(u.ID))
		}
		u = given
		now := s.cfg.Now().UTC()
		old, rev, exists := s.index.userRev(u.ID)
		if exists && create {
			return fmt.Errorf("user %s: %w", u.ID, ErrExists)
		}
		if exists {
			u.Seq, u.CreatedAt = old.Seq, old.CreatedAt
		} else {
			if u.Seq == 0 {
				seq, err := s.reserveSeq(ctx, "users", 1)
				if err != nil {
					return err
				}
				u.Seq = seq
			}
			if u.CreatedAt.IsZero() {
				u.CreatedAt = now
			}
		}
		u.UpdatedAt = now
		renamed := exists && old.Username != u.Username
		if !exists || renamed {
			if err := s.claimName(ctx, u.Username, u.ID); err != nil {
				return err
			}
		}
		// A compare-and-set, the creation included (rev 0): a put of a
		// user another node creates meanwhile reads it and keeps its seq.
		_, err := s.put(ctx, userKey(u.ID), u, &rev)
		switch {
		case err == ErrExists && create:
			return fmt.Errorf("user %s: %w", u.ID, ErrExists)
		case err == ErrExists:
			return ErrConflict
		case err == nil && renamed:
			s.releaseName(ctx, old.Username, u.ID)
		}
		return err
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// DeleteUser removes a user with their memberships and tokens.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if !s.find(ctx, userKey(id), func() bool { _, ok := s.index.User(id); return ok }) {
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	for _, m := range s.index.GroupsOf(id) {
		if err := s.del(ctx, MemberKey(m.GroupID, id)); err != nil {
			return err
		}
	}
	// The user's tokens go with the tokens they issued, as a revocation
	// takes them (a token works only while its issuer does).
	for _, t := range s.index.Tokens() {
		if t.UserID != id {
			continue
		}
		if _, ok := s.index.Token(t.ID); !ok {
			continue // revoked with another of the user's tokens
		}
		if _, err := s.RevokeToken(ctx, t.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	u, _ := s.index.User(id)
	if err := s.del(ctx, userKey(id)); err != nil {
		return err
	}
	s.releaseName(ctx, u.Username, id)
	return nil
}
