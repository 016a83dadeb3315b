package client

import "errors"

var (
	// ErrClosed is returned by calls on a client that stopped: Close was
	// called, or the connection ended for good. In the latter case the error
	// also wraps the cause.
	ErrClosed = errors.New("client: closed")
	// ErrConnectionLost fails a request whose connection ended before its
	// reply came. The request may or may not have taken effect.
	ErrConnectionLost = errors.New("client: connection lost before the reply")
	// ErrUnexpectedReply is returned when the server answers a request with a
	// frame of the wrong op.
	ErrUnexpectedReply = errors.New("client: unexpected reply")
)
