package presence

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
)

// Defaults for the zero values of Config.
const (
	DefaultBucket       = "presenced_presence"
	DefaultLeaseTTL     = 6 * time.Second
	DefaultLeaseRefresh = 2 * time.Second
	DefaultGrace        = 5 * time.Second
	DefaultCoalesce     = 25 * time.Millisecond
	// DefaultFanoutBudget is the default FanoutBudget per CPU
	// (GOMAXPROCS): a group of 1,000 subscribers keeps the 25 ms window
	// (40 windows a second), and at the 16-20 µs of server CPU a
	// delivered batch costs (presence-bench fanout1k) fan-out stays
	// within about two thirds of each CPU.
	DefaultFanoutBudget = 40000
	DefaultSourceStall  = 10 * time.Second
	DefaultHistory      = 1024
)

// Config configures an Engine. Zero values mean the documented defaults.
type Config struct {
	// JetStream and Conn reach NATS. Both are required; the engine does
	// not close them.
	JetStream jetstream.JetStream
	Conn      *nats.Conn
	// Bucket is the presence KV bucket (default DefaultBucket).
	Bucket string
	// MembershipBucket is the membership KV bucket whose member keys are
	// sourced into the presence bucket (default membership.DefaultBucket).
	MembershipBucket string
	// Storage of the presence bucket (default jetstream.FileStorage). On
	// file, what someone stated (backend sources, manual statuses)
	// survives a restart of every server; sessions do not need to, since
	// they count only while their node's lease does. On memory, a restart
	// of every server loses everything, and the engine starts a new epoch.
	Storage jetstream.StorageType
	// Replicas of the presence bucket (default 1).
	Replicas int
	// NodeID names this node; required, a membership.ValidID. Two running
	// nodes must not share one.
	NodeID string
	// LeaseTTL is how long a node's lease lives without a refresh (default
	// 6s); LeaseRefresh is how often the node refreshes it (default 2s).
	LeaseTTL, LeaseRefresh time.Duration
	// Grace is how long a closed session lingers before it stops counting
	// (default 5s; negative: no grace).
	Grace time.Duration
	// AutoAway is the idle time after which an online session counts as
	// away (default 0: never).
	AutoAway time.Duration
	// Coalesce is the window in which deltas of one group are merged into
	// one batch (default 25ms; negative: every event is its own batch).
	Coalesce time.Duration
	// FanoutBudget bounds the batches the node hands its subscribers per
	// second: after a flush that queued n batches, the next window is
	// max(Coalesce, n/FanoutBudget). A change to a group of 100,000
	// subscribers thus waits longer for the next, and a burst of joins to
	// a large group costs frames in proportion to time, not to joins
	// (default DefaultFanoutBudget per CPU; negative: no budget).
	FanoutBudget int
	// History is how many deltas each group keeps for resume (default
	// 1024). Every node keeps them for every group (a client may resume on
	// any node), at about 100 bytes per delta.
	History int
	// SourceStall is how long the sourcing of membership into the
	// presence bucket may lag without progress before the engine asks the
	// presence stream's leader to step down (default 10s; see sourcing.go).
	SourceStall time.Duration
	// OnAvailability is told when this node stops being able to serve
	// presence (err: why; it cannot reach a quorum of the store, or lost
	// NATS) and when it can again (nil). It runs on an engine goroutine and
	// must not block. Readers of presence should refuse to serve a frozen
	// picture meanwhile; see Engine.Available.
	OnAvailability func(err error)
	// Clock drives every timer (default SystemClock).
	Clock Clock
	// Logger (default zap.NewNop()).
	Logger *zap.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.JetStream == nil || c.Conn == nil {
		return c, errors.New("presence: config: JetStream and Conn are required")
	}
	if !membership.ValidID(c.NodeID) {
		return c, fmt.Errorf("presence: config: invalid NodeID %q", c.NodeID)
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.MembershipBucket == "" {
		c.MembershipBucket = membership.DefaultBucket
	}
	if c.Bucket == c.MembershipBucket {
		return c, errors.New("presence: config: Bucket and MembershipBucket must differ")
	}
	if !membership.ValidID(c.Bucket) || !membership.ValidID(c.MembershipBucket) {
		return c, errors.New("presence: config: invalid bucket name")
	}
	if c.Storage != jetstream.MemoryStorage && c.Storage != jetstream.FileStorage {
		return c, fmt.Errorf("presence: config: invalid Storage %d", c.Storage)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return c, fmt.Errorf("presence: config: Replicas %d out of 1..5", c.Replicas)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeaseRefresh == 0 {
		c.LeaseRefresh = DefaultLeaseRefresh
	}
	if c.LeaseTTL < 0 || c.LeaseRefresh < 0 || c.LeaseRefresh >= c.LeaseTTL {
		return c, errors.New("presence: config: need 0 < LeaseRefresh < LeaseTTL")
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.AutoAway < 0 {
		return c, errors.New("presence: config: negative AutoAway")
	}
	if c.SourceStall <= 0 {
		c.SourceStall = DefaultSourceStall
	}
	if c.Coalesce == 0 {
		c.Coalesce = DefaultCoalesce
	}
	if c.FanoutBudget == 0 {
		c.FanoutBudget = DefaultFanoutBudget * runtime.GOMAXPROCS(0)
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.History < 0 {
		return c, errors.New("presence: config: negative History")
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c, nil
}
