package presence

import "errors"

// Sentinel errors. Input errors wrap ErrInvalid so that an edge can answer
// "bad request" with errors.Is.
var (
	ErrInvalid       = errors.New("presence: invalid input")
	ErrNotReady      = errors.New("presence: engine not started")
	ErrClosed        = errors.New("presence: closed")
	ErrSlowConsumer  = errors.New("presence: slow consumer")
	ErrSessionClosed = errors.New("presence: session closed")
	// ErrUnavailable: this node is cut off from the store (see
	// Engine.Available); a write it could not store fails with it.
	ErrUnavailable = errors.New("presence: unavailable")
)
