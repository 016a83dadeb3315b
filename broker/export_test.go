package broker

import (
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// Test hooks: reach into a running server from the tests of this package.

// Engine returns the presence engine.
func (s *Server) Engine() *presence.Engine { return s.engine }

// Store returns the membership store.
func (s *Server) Store() *membership.Store { return s.store }

// Kill stops the node at once, as if the process died.
func (s *Server) Kill() { s.kill() }

// NativeRoutes returns the pattern of every route of the native API, in the
// order of the routing table.
func (s *Server) NativeRoutes() ([]string, error) {
	rs, err := s.routes()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		if r.native {
			out = append(out, r.pattern)
		}
	}
	return out, nil
}

// DropWebSockets closes every WebSocket with "going away", as a node that
// restarts would, and leaves the node running: their clients reconnect.
func (s *Server) DropWebSockets() {
	for _, wc := range s.conns.all() {
		wc.close(protocol.CloseGoingAway)
	}
}

// SetSubscribedHook runs f right after each WebSocket subscription is
// registered with the engine and before its first frame is written; nil
// removes it.
func SetSubscribedHook(f func()) { testHookSubscribed = f }

// SetMayWatchHook sets a function run when a subscribe's first check of
// the authority passed.
func SetMayWatchHook(f func()) { testHookMayWatch = f }

// SetStatsHook runs f whenever a scrape reads the engine's Stats.
func SetStatsHook(f func()) { testHookStats = f }

// SetParseJWTHook runs f at every full check of a JWT's signature and
// claims (not at a use of a cached verdict); nil removes it.
func SetParseJWTHook(f func()) { testHookParseJWT = f }

// SetSessionStoredHook runs f with the user of every new WebSocket once its
// session is stored, before the connection is registered; nil removes it.
func SetSessionStoredHook(f func(user string)) {
	if f == nil {
		testHookSessionStored.Store(nil)
		return
	}
	testHookSessionStored.Store(&f)
}

// MarkStalled makes the node act as after a stall of its process: the
// next credential is checked once its membership index caught up.
func (s *Server) MarkStalled() { s.auth.fresh.stalled.Store(s.auth.fresh.now()) }

// WebSockets is the number of WebSocket sessions the node holds.
func (s *Server) WebSockets() int { return s.conns.len() }
