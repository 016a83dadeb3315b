package broker

import (
	"errors"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// A node cut off from its store (it cannot reach a quorum, or lost NATS)
// would only serve a frozen picture. While the presence engine says so,
// every read path answers "unavailable": REST with 503 and Retry-After,
// the vendors' APIs in their own shape, WebSocket upgrades with 503; open
// WebSockets are closed with 4012 so that their clients go elsewhere (or
// come back once the node recovers, which it does by itself).

// onAvailability is the engine's Config.OnAvailability.
func (s *Server) onAvailability(err error) {
	if err == nil {
		s.log.Info("presence available again")
		return
	}
	conns := s.conns.all()
	s.log.Warn("presence unavailable on this node; closing its WebSockets", zap.Error(err), zap.Int("websockets", len(conns)))
	for _, wc := range conns {
		wc.close(protocol.CloseUnavailable)
	}
	s.ddp.Load().CloseAll(protocol.CloseUnavailable) // Rocket.Chat's realtime clients too
}

// unavailable reports why this node cannot serve presence now, nil when it
// can.
func (s *Server) unavailable() error {
	if s.engine == nil {
		return ErrNotReady
	}
	if s.store != nil {
		if err := s.store.Lost(); err != nil {
			return err // serving a membership the store lost would answer wrong
		}
	}
	return s.engine.Available()
}

// errUnavailable marks errors that answer 503 "unavailable" with
// Retry-After: the store did not answer (an election, a lost quorum) or
// this node is cut off from it.
var errUnavailable = errors.New("unavailable")

// storeUnavailable reports whether err means the store could not be
// reached right now, as opposed to a fault of the request or of the code.
func storeUnavailable(err error) bool {
	var apiErr *jetstream.APIError
	return jskv.Transient(err) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, presence.ErrNotReady) || errors.Is(err, presence.ErrClosed) ||
		errors.Is(err, presence.ErrResetting) || errors.Is(err, presence.ErrUnavailable) || errors.Is(err, jskv.ErrStopped) ||
		errors.Is(err, errUnavailable) ||
		errors.As(err, &apiErr) && apiErr.Code == http.StatusServiceUnavailable
}
