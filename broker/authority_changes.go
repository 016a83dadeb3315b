package broker

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// A change of authority reaches open connections at once, on every node
// (each follows the membership bucket): a revoked token, or a user
// deactivated or deleted, closes the connections that authenticated with
// it with 4002 unauthorized; a member removed from a group, or a user who
// lost the admin role, loses the subscriptions and count watches the
// authority rule no longer allows, each ended with an error push.

// onMembershipChange is the membership store's change feed callback. It
// runs on the store's watch goroutine: it only looks connections up and
// hands the work to them.
func (s *Server) onMembershipChange(c membership.Change) {
	switch c.Kind {
	case membership.KindToken:
		if c.Deleted {
			id := c.Token.ID
			s.revoke(s.conns.ofToken(id), "token revoked", func(cr membership.Credential) bool { return cr.TokenID == id })
		}
	case membership.KindUser:
		switch {
		case c.Deleted:
			s.revoke(s.conns.ofUser(c.User.ID), "user deleted", ofUser(c.User.ID))
			go s.forgetPresence(c.User.ID)
			s.recheckDDP(*c.User)
		case !c.User.Active:
			// The user's tokens, and those they issued (for other users
			// too), stop working with the user.
			id := c.User.ID
			conns := s.conns.ofUser(id)
			issued := map[string]bool{}
			for _, tid := range s.store.Index().TokensUnder(id) {
				issued[tid] = true
				conns = append(conns, s.conns.ofToken(tid)...)
			}
			s.revoke(conns, "user deactivated", func(cr membership.Credential) bool { return cr.UserID == id || issued[cr.TokenID] })
		default: // roles may have changed: what the user may watch too
			for _, wc := range s.conns.ofUser(c.User.ID) {
				go wc.recheckAccess()
			}
			s.recheckDDP(*c.User)
		}
	case membership.KindMember:
		if c.Deleted {
			for _, wc := range s.conns.ofUser(c.Member.UserID) {
				go wc.recheckAccess()
			}
			if u, ok := s.store.Index().User(c.Member.UserID); ok {
				s.recheckDDP(u)
			}
		}
	}
}

// recheckDDP tells Rocket.Chat's realtime clients that may no longer see
// u, or be seen by u, that the other reads offline now (ddp.Handler.Recheck,
// which returns at once).
func (s *Server) recheckDDP(u membership.User) { s.ddp.Load().Recheck(u) }

// forgetTimeout bounds the deletion of a deleted user's stated status:
// longer than an election of the presence stream.
const forgetTimeout = 30 * time.Second

// forgetPresence deletes the status backends and the user stated for a
// user just deleted (presence.Engine.ForgetUser), so that it reads as
// never seen and a user created with its id later starts with nothing.
// Every node does it; one node's deletion of each record wins.
func (s *Server) forgetPresence(user string) {
	ctx, cancel := context.WithTimeout(context.Background(), forgetTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	if _, ok := s.store.Index().User(user); ok {
		return // created again meanwhile: what is stated now is the new user's
	}
	if err := s.engine.ForgetUser(ctx, user); err != nil && ctx.Err() == nil {
		s.log.Warn("deleting a deleted user's stated status failed; another node may have done it",
			zap.String("user", user), zap.Error(err))
	}
}

// revoke closes connections whose credential is no longer valid: the
// native WebSockets given and the Rocket.Chat realtime connections whose
// credential matches.
func (s *Server) revoke(conns []*wsConn, why string, match func(membership.Credential) bool) {
	n := 0
	for _, wc := range conns {
		if wc.close(protocol.CloseUnauthorized) {
			n++
		}
	}
	if rt := s.ddp.Load(); rt != nil {
		n += rt.CloseWhere(match)
	}
	if n > 0 {
		s.log.Info("closed connections whose credential is no longer valid", zap.String("why", why), zap.Int("connections", n))
	}
}

func ofUser(id string) func(membership.Credential) bool {
	return func(c membership.Credential) bool { return c.UserID == id }
}

// recheckAccess ends the subscriptions and count watches of groups the
// connection may no longer watch.
func (wc *wsConn) recheckAccess() {
	// No writer is between its check of what the connection subscribes to
	// and its write (see flush) while the state changes and the error
	// pushes go out: nothing of a lost group follows its error push.
	wc.flushMu.Lock()
	defer wc.flushMu.Unlock()
	wc.recheckAccessLocked()
}

// recheckAccessLocked is recheckAccess with flushMu held.
func (wc *wsConn) recheckAccessLocked() {
	wc.mu.Lock()
	subscribed := wc.groups.IDs()
	counted, all := slices.Clone(wc.counts), wc.countsAll
	wc.mu.Unlock()

	var lost, lostCounts []string
	for _, g := range subscribed {
		if !wc.mayWatch(g) {
			lost = append(lost, g)
		}
	}
	for _, g := range counted {
		if !wc.mayWatch(g) {
			lostCounts = append(lostCounts, g)
		}
	}
	all = all && !wc.seesEveryGroup()

	wc.mu.Lock()
	for _, g := range lost {
		wc.groups.Delete(g)
	}
	wc.counts = slices.DeleteFunc(wc.counts, func(g string) bool { return slices.Contains(lostCounts, g) })
	if all {
		wc.countsAll = false
	}
	wc.mu.Unlock()

	for _, g := range lost {
		wc.sub.Unsubscribe(g)
		if err := wc.write(context.Background(), protocol.AppendGroupError(nil, g, protocol.CodeForbidden, "no longer a member of "+g)); err != nil {
			return
		}
	}
	switch {
	case all:
		wc.sub.UnwatchCounts() // no longer an admin: no counts of every group
	case len(lostCounts) > 0:
		wc.sub.UnwatchCountsOf(lostCounts...)
	}
}
