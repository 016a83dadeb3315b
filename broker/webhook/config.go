package webhook

import (
	"fmt"
	"math/rand/v2"
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
	DefaultQueueGroup   = "presenced-webhooks"
	DefaultBatchSize    = 100
	DefaultBatchWait    = time.Second
	DefaultQueueLimit   = 10000
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultTimeout      = 10 * time.Second
	DefaultMaxBodyBytes = 128 << 10
	DefaultStatusWait   = 200 * time.Millisecond
)

// SubjectStatus is the core NATS subject on which every node answers for
// its share of a webhook's delivery counters (see Service.Status).
const SubjectStatus = "presenced.webhooks.status"

// Config configures a Service. Conn and JetStream are required; the zero
// value of every other field is the documented default.
type Config struct {
	// Conn receives the change feed and carries status requests.
	Conn *nats.Conn
	// JetStream holds the webhooks bucket.
	JetStream jetstream.JetStream
	// Bucket is the KV bucket of the registrations (default DefaultBucket,
	// file storage); Replicas its replication factor (default 1).
	Bucket   string
	Replicas int
	// MaxWebhooks bounds the registrations (default DefaultMaxWebhooks).
	MaxWebhooks int
	// NodeID names this process in deliveries ("node") and status answers.
	// With the batch number it identifies a batch, so it must differ
	// between processes and between restarts of one (default: a random id).
	NodeID string
	// Subject is the change feed (default presence.SubjectChanges + ">"),
	// subscribed with QueueGroup (default DefaultQueueGroup) so that each
	// change is handled by one node.
	Subject    string
	QueueGroup string
	// BatchSize is the most changes in one POST (default 100); a batch is
	// sent when it is full or BatchWait (default 1s) after its first change
	// arrived.
	BatchSize int
	BatchWait time.Duration
	// QueueLimit bounds the changes waiting for one endpoint on this node
	// (default 10,000), besides the batch being delivered. Past it the
	// oldest are dropped and counted.
	QueueLimit int
	// MinBackoff and MaxBackoff bound the wait between attempts at a failed
	// batch (defaults 250ms and 30s): doubled per attempt, with jitter. A
	// Retry-After in seconds is honored up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one delivery attempt, connection to response
	// (default 10s).
	Timeout time.Duration
	// Client sends the deliveries (default: a client that does not follow
	// redirects, with dial, TLS and header timeouts). Its connections are
	// its owner's to close.
	Client *http.Client
	// MaxBodyBytes bounds REST request bodies (default 128 KiB).
	MaxBodyBytes int64
	// StatusWait is how long Status collects the other nodes' answers
	// (default 200ms).
	StatusWait time.Duration
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
	if c.Subject == "" {
		c.Subject = presence.SubjectChanges + ">"
	}
	if c.QueueGroup == "" {
		c.QueueGroup = DefaultQueueGroup
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchWait <= 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
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
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.StatusWait <= 0 {
		c.StatusWait = DefaultStatusWait
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
