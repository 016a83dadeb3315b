package broker

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Test hooks of the embedded NATS.

// NATSServer returns the embedded nats-server, nil with an external NATS.
func (s *Server) NATSServer() *server.Server { return s.ns }

// NATSConn returns the broker's own NATS connection.
func (s *Server) NATSConn() *nats.Conn { return s.nc }

// NATSSelfSeed returns the seed of the broker's own user nkey of the
// embedded server.
func (s *Server) NATSSelfSeed() string { return s.nsAuth }
