package presence

import (
	"slices"

	"github.com/presenced/presenced/membership"
)

// User watches: a subscriber may follow users rather than groups, as
// Rocket.Chat's realtime API does (a stream per user, or every user's
// changes). Each change of a watched user's status or text is pushed at
// once as a Batch whose Users holds it, at the revision that caused it;
// the caller decides whom its client may see.

// userWatch is the index's user watchers. It is guarded by index.mu.
type userWatch struct {
	byUser map[string][]*Subscriber // watchers of one user
	all    []*Subscriber            // watchers of every user
}

// WatchUsers adds users to those whose changes s receives, and returns
// their current status.
func (s *Subscriber) WatchUsers(users []string) ([]UserStatus, error) {
	for _, u := range users {
		if !membership.ValidID(u) {
			return nil, invalid("user id %q", u)
		}
	}
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := s.beginLocked(); err != nil {
		return nil, err
	}
	if x.uw.byUser == nil {
		x.uw.byUser = make(map[string][]*Subscriber)
	}
	if s.users == nil {
		s.users = make(map[string]bool)
	}
	out := make([]UserStatus, len(users))
	for i, u := range users {
		if !s.users[u] {
			s.users[u] = true
			x.uw.byUser[u] = append(x.uw.byUser[u], s)
		}
		out[i] = x.userStatusLocked(u)
	}
	return out, nil
}

// WatchAllUsers makes s receive the changes of every user.
func (s *Subscriber) WatchAllUsers() error {
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := s.beginLocked(); err != nil {
		return err
	}
	if !s.allUsers {
		s.allUsers = true
		x.uw.all = append(x.uw.all, s)
	}
	return nil
}

// UnwatchUsers stops the changes of users (nil: every user watch of s,
// WatchAllUsers included).
func (s *Subscriber) UnwatchUsers(users []string) {
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	s.unwatchUsersLocked(users)
}

func (s *Subscriber) unwatchUsersLocked(users []string) {
	x := s.x
	if users == nil {
		if s.allUsers {
			s.allUsers = false
			x.uw.all = slices.DeleteFunc(x.uw.all, func(o *Subscriber) bool { return o == s })
		}
		for u := range s.users {
			users = append(users, u)
		}
	}
	for _, u := range users {
		if !s.users[u] {
			continue
		}
		delete(s.users, u)
		ws := slices.DeleteFunc(x.uw.byUser[u], func(o *Subscriber) bool { return o == s })
		if len(ws) == 0 {
			delete(x.uw.byUser, u)
		} else {
			x.uw.byUser[u] = ws
		}
	}
}

// userChangedLocked pushes a change of u to its watchers.
func (x *index) userChangedLocked(c Change) {
	if len(x.uw.all) == 0 && len(x.uw.byUser[c.User]) == 0 {
		return
	}
	b := Batch{Rev: c.Rev, Users: []Change{c}}
	for _, s := range x.uw.all {
		x.push(s, b)
	}
	for _, s := range x.uw.byUser[c.User] {
		if !s.allUsers {
			x.push(s, b)
		}
	}
}
