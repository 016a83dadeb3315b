package broker

import "github.com/presenced/presenced/broker/compat/ddp"

// DDP returns the handler of Rocket.Chat's realtime API.
func (s *Server) DDP() *ddp.Handler { return s.ddp.Load() }

// OnAvailability tells the server what the presence engine tells it when
// this node stops (err) or starts again (nil) being able to serve.
func (s *Server) OnAvailability(err error) { s.onAvailability(err) }
