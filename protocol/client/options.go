package client

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Options configure a Client. A nil *Options, and every zero field, means
// the default.
type Options struct {
	// Token is sent as "Authorization: Bearer <token>" on every connection.
	// Refresh replaces it.
	Token string
	// TokenFunc, when set, is called before every connection attempt for the
	// token to send, instead of Token. A client with a TokenFunc reconnects
	// after the server closed for an expired token.
	TokenFunc func(ctx context.Context) (string, error)
	// HTTPHeader holds extra handshake headers.
	HTTPHeader http.Header
	// HTTPClient performs the handshake (default http.DefaultClient).
	HTTPClient *http.Client
	// Device and ClientName are sent as the query parameters device and
	// client, stored with the session and shown in logs.
	Device     string
	ClientName string

	// Reconnect makes the client reconnect after a lost connection and
	// restore its subscriptions and counts watch. Without it the client
	// stops (and Events closes) when the connection ends.
	Reconnect bool
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts
	// (defaults 100ms and 5s). The n-th wait is drawn uniformly between half
	// and all of min(MinBackoff·2ⁿ, MaxBackoff).
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// PingInterval is how often the client pings the server to detect a dead
	// connection (default 30s; negative disables). A ping unanswered within
	// PingTimeout (default 15s) drops the connection.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// ReadLimit is the largest server frame accepted, in bytes (default
	// 32 MiB: a snapshot costs about 70 bytes per member).
	ReadLimit int64

	// Logger receives connection-level logs (default: none).
	Logger *zap.Logger

	// OnEvent, when set, receives every event instead of the Events
	// channel. It is called from the client's reading goroutine, one event
	// at a time and in order: it must return quickly and must not call Close
	// or a Client method that waits for a reply (that reply could only be
	// read after OnEvent returns).
	OnEvent func(Event)
	// EventBuffer is the capacity of the Events channel (default 1024).
	EventBuffer int
}

const (
	defaultMinBackoff   = 100 * time.Millisecond
	defaultMaxBackoff   = 5 * time.Second
	defaultPingInterval = 30 * time.Second
	defaultPingTimeout  = 15 * time.Second
	defaultReadLimit    = 32 << 20
	defaultEventBuffer  = 1024
)

// withDefaults returns a copy of o with defaults filled in.
func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.HTTPClient == nil {
		out.HTTPClient = http.DefaultClient
	}
	if out.MinBackoff <= 0 {
		out.MinBackoff = defaultMinBackoff
	}
	if out.MaxBackoff <= 0 {
		out.MaxBackoff = defaultMaxBackoff
	}
	if out.MaxBackoff < out.MinBackoff {
		out.MaxBackoff = out.MinBackoff
	}
	if out.PingInterval == 0 {
		out.PingInterval = defaultPingInterval
	}
	if out.PingTimeout <= 0 {
		out.PingTimeout = defaultPingTimeout
	}
	if out.ReadLimit <= 0 {
		out.ReadLimit = defaultReadLimit
	}
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	if out.EventBuffer <= 0 {
		out.EventBuffer = defaultEventBuffer
	}
	return out
}
