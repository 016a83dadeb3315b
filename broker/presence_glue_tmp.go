package broker

import (
	"context"
	"net/http"
)

func (s *Server) startPresence(ctx context.Context, replicas int) error { return nil }
func (s *Server) stopPresence(ctx context.Context, graceful bool) error { return nil }
func (s *Server) presenceRoutes(mux *http.ServeMux)                     {}
func (s *Server) closeWebSockets()                                      {}
