package ddp

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/presence"
)

// ErrConfig is returned by New for an invalid Config.
var ErrConfig = errors.New("ddp: invalid config")

// Config configures a Handler. Zero values take the defaults documented on
// each field; they are those of the native WebSocket (/v1/ws).
type Config struct {
	// Auth, Presence, Users and Visibility are required.
	Auth       AuthFunc
	Presence   Presence
	Users      Users
	Visibility Visibility

	// Available reports why this node cannot serve presence now, nil when
	// it can; while it is not nil, upgrades are answered 503 (nil func:
	// always available). Open connections are closed by CloseAll.
	Available func() error

	// AllowedOrigins lists the Origin values browsers may connect from
	// ("*" any; a URL or a host pattern). Empty allows only same-host
	// origins. Clients that send no Origin (apps, Node) are allowed.
	AllowedOrigins []string

	// MaxFrameBytes bounds one WebSocket frame from a client (default 64 KiB).
	MaxFrameBytes int64
	// OpsPerSecond bounds the DDP messages one connection may send
	// (default 50, burst twice that). Past it a method or sub is answered
	// with Meteor's too-many-requests error; after 20 such answers the
	// connection is closed with 4008.
	OpsPerSecond float64
	// WriteQueue bounds the batches of changes waiting for a connection
	// before it is cut as a slow consumer with 4009 (default 256).
	WriteQueue int
	// IdleTimeout: a connection silent for a third of it gets a DDP ping,
	// and one silent for all of it is closed with 4010 (default 60s).
	IdleTimeout time.Duration
	// LoginTimeout closes, with 4002, a connection that has not logged in
	// this long after it opened or logged out (default 30s).
	LoginTimeout time.Duration
	// TokenLifetime is the tokenExpires a login reports for a credential
	// that never expires: now plus this (default 90 days, Rocket.Chat's
	// default login expiration).
	TokenLifetime time.Duration

	// Logger receives the handler's logs (default: none).
	Logger *zap.Logger
	// Now is the clock of tokenExpires and of idle times (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	switch {
	case c.Auth == nil:
		return fmt.Errorf("%w: Auth is required", ErrConfig)
	case c.Presence == nil:
		return fmt.Errorf("%w: Presence is required", ErrConfig)
	case c.Users == nil:
		return fmt.Errorf("%w: Users is required", ErrConfig)
	case c.Visibility == nil:
		return fmt.Errorf("%w: Visibility is required", ErrConfig)
	case c.MaxFrameBytes < 0, c.OpsPerSecond < 0, c.WriteQueue < 0, c.IdleTimeout < 0,
		c.LoginTimeout < 0, c.TokenLifetime < 0:
		return fmt.Errorf("%w: limits must not be negative", ErrConfig)
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 64 << 10
	}
	if c.OpsPerSecond == 0 {
		c.OpsPerSecond = 50
	}
	if c.WriteQueue == 0 {
		c.WriteQueue = presence.DefaultQueue
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = 30 * time.Second
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = 90 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
