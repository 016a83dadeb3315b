package webhook

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"

	"github.com/presenced/presenced/presence"
)

// Defaults of Config.
const (
	DefaultStream         = "presenced_changes"
	DefaultStreamMaxAge   = 24 * time.Hour
	DefaultStreamMaxBytes = 1 << 30
	DefaultQueueLimit     = 1000000
	DefaultBatchSize      = 100
	DefaultBatchWait      = time.Second
	DefaultFailoverAfter  = 5 * time.Second
	DefaultMinBackoff     = 250 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultMaxBodyBytes   = 128 << 10
	DefaultStatusWait     = 200 * time.Millisecond
	DefaultOrphanSweep    = time.Minute
)

// MinFailoverAfter is the smallest Config.FailoverAfter: the delivering
// node renews its claim four times per period, on a network that may be
// busy.
const MinFailoverAfter = 100 * time.Millisecond

// SubjectStatus is the core NATS subject on which every node answers for
// its share of a webhook's delivery counters (see Service.Status).
const SubjectStatus = "presenced.webhooks.status"

// Config configures a Service. Conn and JetStream are required; the zero
// value of every other field is the documented default.
type Config struct {
	// Conn carries status requests between the nodes.
	Conn *nats.Conn
	// JetStream holds the webhooks bucket, the change stream and the
	// webhooks' consumers.
	JetStream jetstream.JetStream
	// Bucket is the KV bucket of the registrations (default DefaultBucket,
	// file storage); Replicas the replication factor of the bucket, the
	// stream and the consumers (default 1).
	Bucket   string
	Replicas int
	// MaxWebhooks bounds the registrations (default DefaultMaxWebhooks).
	MaxWebhooks int
	// NodeID names this process in the X-Presenced-Node header of its
	// deliveries and in status answers (default: a random id).
	NodeID string
	// Stream is the JetStream stream that keeps the change feed for the
	// webhooks (default DefaultStream, file storage), capturing Subject
	// (default presence.SubjectChanges + ">"). It keeps a change for
	// StreamMaxAge (default 24h) and keeps at most StreamMaxBytes (default
	// 1 GiB) and QueueLimit changes (default 1,000,000); past a bound the
	// oldest go, delivered or not: those are the changes an endpoint that
	// fails for longer loses (counted as dropped).
	Stream         string
	Subject        string
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	QueueLimit     int
	// BatchSize is the most changes in one POST (default 100); a batch is
	// sent when it is full or BatchWait (default 1s) after its first change
	// was taken from the stream.
	BatchSize int
	BatchWait time.Duration
	// FailoverAfter is how long a node that delivers a webhook may go
	// silent before another node takes the webhook over (default 5s, at
	// least MinFailoverAfter): the consumer's pinned-client timeout and ack
	// wait. The delivering node renews both every quarter of it.
	FailoverAfter time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts at a failed
	// batch (defaults 250ms and 30s): doubled per attempt, with jitter. A
	// Retry-After in seconds is honored up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one delivery attempt, connection to response
	// (default 10s).
	Timeout time.Duration
	// AllowPrivate lets webhooks target loopback, private, link-local,
	// unspecified, multicast and other non-public addresses. Without it
	// such targets are refused at registration (after resolving the host)
	// and at every connection (the address actually dialed).
	AllowPrivate bool
	// Resolver resolves target hosts at registration (default
	// net.DefaultResolver).
	Resolver Resolver
	// Client sends the deliveries (default: a client that follows no
	// redirect, dials only public addresses unless AllowPrivate, with
	// dial, TLS and header timeouts). A Client given here is used as it is:
	// it must do its own address checks. Its connections are its owner's
	// to close.
	Client *http.Client
	// MaxBodyBytes bounds REST request bodies (default 128 KiB).
	MaxBodyBytes int64
	// StatusWait is how long Status collects the other nodes' answers
	// (default 200ms).
	StatusWait time.Duration
	// OrphanSweep is how often the node deletes the consumers of deleted
	// webhooks that were left behind (a deletion that met an election of
	// the change stream's leader): default 1 minute.
	OrphanSweep time.Duration
	// Clock runs the batch windows and the backoffs (default
	// presence.SystemClock).
	Clock presence.Clock
	// Rand returns jitter in [0,1) (default math/rand/v2.Float64).
	Rand func() float64
	// Logger receives delivery failures and recoveries (default: none).
	// Secrets are never logged, nor the path and query of endpoint URLs.
	Logger *zap.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Conn == nil || c.JetStream == nil {
		return c, fmt.Errorf("%w: config: Conn and JetStream are required", ErrInvalid)
	}
	if c.NodeID == "" {
		c.NodeID = nuid.Next()
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = presence.SubjectChanges + ">"
	}
	if c.StreamMaxAge <= 0 {
		c.StreamMaxAge = DefaultStreamMaxAge
	}
	if c.StreamMaxBytes <= 0 {
		c.StreamMaxBytes = DefaultStreamMaxBytes
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchWait <= 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.FailoverAfter <= 0 {
		c.FailoverAfter = DefaultFailoverAfter
	}
	if c.FailoverAfter < MinFailoverAfter {
		return c, fmt.Errorf("%w: config: FailoverAfter %v below %v", ErrInvalid, c.FailoverAfter, MinFailoverAfter)
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		return c, fmt.Errorf("%w: config: MaxBackoff %v below MinBackoff %v", ErrInvalid, c.MaxBackoff, c.MinBackoff)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.StatusWait <= 0 {
		c.StatusWait = DefaultStatusWait
	}
	if c.OrphanSweep <= 0 {
		c.OrphanSweep = DefaultOrphanSweep
	}
	if c.Clock == nil {
		c.Clock = presence.SystemClock{}
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c, nil
}

// keepalive is how often the delivering node renews its claim on a
// webhook and its hold on the changes it delivers.
func (c Config) keepalive() time.Duration { return c.FailoverAfter / 4 }
