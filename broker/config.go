package broker

import (
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// Config configures a Server. Zero values are the documented defaults; New
// validates the rest.
type Config struct {
	// NodeName names this node in logs, leases and NATS (default: hostname
	// plus a random suffix).
	NodeName string
	// DataDir holds JetStream storage of the embedded nats-server (default "./data").
	DataDir string
	// HTTPAddr is where the HTTP and WebSocket API listens (default ":8080").
	HTTPAddr string

	// NATSURL connects to an external NATS cluster instead of embedding
	// nats-server. Empty means embedded.
	NATSURL string
	// NATSCredsFile, NATSCAFile, NATSCertFile, NATSKeyFile authenticate to
	// an external NATS.
	NATSCredsFile, NATSCAFile, NATSCertFile, NATSKeyFile string
	// NATSListen opens the embedded server's client port (e.g.
	// "127.0.0.1:4222") for external publishers. Empty keeps it closed: the
	// broker then talks to it in-process.
	NATSListen string
	// ClusterName, ClusterListen and Routes join the embedded server to
	// other nodes' embedded servers.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// Replicas is the replication factor of the buckets (default: 3 when
	// the embedded cluster has 3 or more routes+self, else 1).
	Replicas int

	// AdminToken, when set, is the admin API token (instead of one
	// generated on first run).
	AdminToken string

	// JWTSecret verifies HS256 user tokens. JWTPublicKeys is PEM with RSA or
	// EC public keys that verify RS256 and ES256 user tokens.
	JWTSecret     string
	JWTPublicKeys []byte

	// AllowedOrigins lists the Origin values browsers may open WebSockets
	// from ("*" any). Empty allows only same-host origins.
	AllowedOrigins []string

	// Presence settings (zero: the presence package's defaults).
	Grace, LeaseTTL, LeaseRefresh, AutoAway, Coalesce time.Duration
	// PresenceFileStorage keeps sessions on disk instead of memory.
	PresenceFileStorage bool

	// WebhookQueueLimit bounds the changes the webhooks' change stream
	// keeps (besides 24 hours and 1 GiB); past it the oldest are dropped,
	// delivered or not, and counted (default: the webhook package's).
	WebhookQueueLimit int
	// WebhookAllowPrivate lets webhooks target loopback, private,
	// link-local and other non-public addresses.
	WebhookAllowPrivate bool

	// Limits (zero: defaults in limits.go).
	Limits Limits

	// TLSCertFile and TLSKeyFile serve HTTPS and WSS.
	TLSCertFile, TLSKeyFile string
	// PprofAddr serves net/http/pprof on a loopback address when set.
	PprofAddr string

	// Logger receives the server's logs (default: no logging).
	Logger *zap.Logger
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Limits.setDefaults()
	if c.NATSURL != "" && (c.ClusterName != "" || len(c.Routes) > 0 || c.NATSListen != "") {
		return fmt.Errorf("%w: --nats-url excludes the embedded server's --cluster-*, --routes and --nats-listen", ErrConfig)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrConfig)
	}
	if c.PprofAddr != "" {
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if err != nil {
			return fmt.Errorf("%w: --pprof-addr: %v", ErrConfig, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%w: --pprof-addr must be a loopback address", ErrConfig)
		}
	}
	if c.NATSListen != "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			return fmt.Errorf("%w: --nats-listen: %v", ErrConfig, err)
		}
	}
	if c.ClusterName != "" && c.ClusterListen == "" {
		return fmt.Errorf("%w: --cluster-name needs --cluster-listen", ErrConfig)
	}
	return nil
}
