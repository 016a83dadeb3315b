package broker

import (
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
)

// Test hooks: reach into a running server from the tests of this package.

// Engine returns the presence engine.
func (s *Server) Engine() *presence.Engine { return s.engine }

// Store returns the membership store.
func (s *Server) Store() *membership.Store { return s.store }

// Kill stops the node at once, as if the process died.
func (s *Server) Kill() { s.kill() }
