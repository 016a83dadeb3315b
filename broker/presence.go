package broker

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/presence"
)

// startPresence starts the presence engine on the node's JetStream.
func (s *Server) startPresence(ctx context.Context, replicas int) error {
	storage := jetstream.FileStorage
	if s.cfg.PresenceStorage == "memory" {
		storage = jetstream.MemoryStorage
	}
	e, err := presence.New(presence.Config{
		JetStream:      s.js,
		Conn:           s.nc,
		Storage:        storage,
		Replicas:       replicas,
		NodeID:         s.cfg.NodeName,
		LeaseTTL:       s.cfg.LeaseTTL,
		LeaseRefresh:   s.cfg.LeaseRefresh,
		Grace:          s.cfg.Grace,
		AutoAway:       s.cfg.AutoAway,
		Coalesce:       s.cfg.Coalesce,
		FanoutBudget:   s.cfg.FanoutBudget,
		Logger:         s.cfg.Logger, // the engine names its node itself
		OnAvailability: s.onAvailability,
	})
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	s.engine = e
	return nil
}

// stopPresence shuts the engine down: its sessions enter their grace
// period and its lease is released (nothing is written when the NATS
// connection is gone, as in kill).
func (s *Server) stopPresence(ctx context.Context) error {
	if s.engine == nil {
		return nil
	}
	return s.engine.Shutdown(ctx)
}
