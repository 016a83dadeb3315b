package wsaccept

import (
	"errors"
	"syscall"
	"time"
)

// ErrNoPing is Ping's answer on a connection it cannot ping itself (TLS,
// another platform, a connection that was not hijacked): the library's
// Conn.Ping does it there.
var ErrNoPing = errors.New("wsaccept: the connection is pinged through the library")

// ErrBusy is Ping's answer when a ping could not go out now: the 101 or a
// frame is being written, or the socket's buffer is full (the client reads
// nothing). The caller tries again later.
var ErrBusy = errors.New("wsaccept: the connection is busy writing")

// pingFrame is a ping control frame with no payload, as a server sends it
// (unmasked).
var pingFrame = []byte{0x89, 0x00}

// Ping sends a ping frame without waiting: the server's pinger pings
// thousands of idle connections a minute, and coder/websocket's Conn.Ping
// costs each a goroutine, two contexts with their timers, a channel and an
// entry in a map of pings in flight that the connection keeps for good
// once used (about 320 bytes). The pong comes back through the library's
// reader, which reports it to OnPong (see AcceptOptions.OnPongReceived).
//
// It writes only between frames: every write through the Socket but one
// that keeps a full buffer back ends a frame (see Socket), and it holds the
// Socket's lock, so no part of a frame is on the wire while it writes.
func (s *Socket) Ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.rc == nil:
		return ErrNoPing
	case s.held != nil:
		return ErrBusy // the 101, or the start of a frame, kept back
	}
	n, err := sendNow(s.rc, pingFrame)
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return ErrBusy
	case errors.Is(err, errors.ErrUnsupported):
		return ErrNoPing
	case err == nil && n < len(pingFrame):
		// Half a frame is on the wire: nothing may follow it.
		err = errors.New("wsaccept: a ping was cut short")
	}
	_, err = s.fail(0, err)
	return err
}

// OnPong records a pong's arrival; it is the connection's
// AcceptOptions.OnPongReceived.
func (s *Socket) OnPong() { s.pong.Store(time.Now().UnixNano()) }

// LastPong is when the last pong arrived (unix nanoseconds), or 0.
func (s *Socket) LastPong() int64 { return s.pong.Load() }
