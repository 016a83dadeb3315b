package history

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
)

// Sentinel errors.
var (
	// ErrInvalid wraps a bad configuration or query.
	ErrInvalid = errors.New("history: invalid")
	// ErrClosed is returned once the Service is shut down, or before it
	// has started.
	ErrClosed = errors.New("history: not running")
)

// Engine is what a sample is counted from: the presence engine. Its
// methods are safe for concurrent use and do not block on I/O.
type Engine interface {
	// Available reports why this node must not sample now (it is cut off
	// from the store and would count a frozen picture), nil when it may.
	Available() error
	// Counts returns the online and total counts of every group with
	// members.
	Counts() []presence.GroupCount
	// Statuses returns the presence of users, in the order asked.
	Statuses(users []string) []presence.UserStatus
}

// Users lists every user, a page at a time, sorted by id: the membership
// index.
type Users interface {
	ListUsers(after string, limit int) []membership.User
}

// Default values of Config.
const (
	DefaultPeriod     = 10 * time.Second
	DefaultCoarse     = 6 // fine periods in a coarse one: one minute
	DefaultKeepFine   = time.Hour
	DefaultKeepCoarse = 24 * time.Hour
	DefaultMaxGroups  = 10000
	DefaultBucket     = "presenced_history"
)

// Config configures a Service. JetStream, Engine and Users are required.
type Config struct {
	JetStream jetstream.JetStream
	Engine    Engine
	Users     Users
	// Node names this node in the samples it writes.
	Node string
	// Replicas of the buckets (default 1).
	Replicas int
	// Bucket prefixes the buckets' names: Bucket+"_fine" and
	// Bucket+"_coarse" (default "presenced_history").
	Bucket string
	// Period is the fine sample period, whole milliseconds (default 10s).
	// Every node of a cluster must use the same.
	Period time.Duration
	// Coarse is the coarse sample period, a multiple of Period (default
	// 6 Periods: one minute).
	Coarse time.Duration
	// KeepFine and KeepCoarse are how long samples are kept (default one
	// hour and 24 hours).
	KeepFine, KeepCoarse time.Duration
	// MaxGroups bounds the groups one sample holds (default 10 000): past
	// it only the groups with the most users online are kept, and the
	// sample is marked partial.
	MaxGroups int
	// Logger (default zap.NewNop()).
	Logger *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.JetStream == nil || c.Engine == nil || c.Users == nil {
		return c, fmt.Errorf("%w config: JetStream, Engine and Users are required", ErrInvalid)
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Period == 0 {
		c.Period = DefaultPeriod
	}
	if c.Coarse == 0 {
		c.Coarse = DefaultCoarse * c.Period
	}
	if c.KeepFine == 0 {
		c.KeepFine = DefaultKeepFine
	}
	if c.KeepCoarse == 0 {
		c.KeepCoarse = DefaultKeepCoarse
	}
	if c.MaxGroups == 0 {
		c.MaxGroups = DefaultMaxGroups
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Period < time.Millisecond || c.Period%time.Millisecond != 0:
		return c, fmt.Errorf("%w config: period %v: want whole milliseconds", ErrInvalid, c.Period)
	case c.Coarse < c.Period || c.Coarse%c.Period != 0:
		return c, fmt.Errorf("%w config: coarse period %v: want a multiple of the period %v", ErrInvalid, c.Coarse, c.Period)
	case c.KeepFine < c.Period || c.KeepCoarse < c.Coarse:
		return c, fmt.Errorf("%w config: keep at least one period of each kind", ErrInvalid)
	case c.MaxGroups < 0:
		return c, fmt.Errorf("%w config: max groups %d", ErrInvalid, c.MaxGroups)
	}
	return c, nil
}
