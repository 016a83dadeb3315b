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
	// "127.0.0.1:4222") for external publishers, who sign in as
	// NATSPublisher* says. Empty keeps it closed: the broker always talks
	// to it in-process.
	NATSListen string
	// ClusterName, ClusterListen and Routes join the embedded server to
	// other nodes' embedded servers.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// Replicas is the replication factor of the buckets (default: 3 when
	// the embedded cluster has 3 or more routes+self, else 1).
	Replicas int

	// NATSPublisherUser and NATSPublisherPassword let external publishers
	// onto the client port that NATSListen opens (user default
	// "publisher"); NATSPublisherNKey admits a publisher that signs with
	// the seed of this public user nkey ("U..."). Publishers may only
	// request presenced.status.publish and subscribe to
	// presenced.changes.> and their reply inboxes. NATSListen needs one of
	// them or the admin's password.
	NATSPublisherUser, NATSPublisherPassword, NATSPublisherNKey string
	// NATSAdminUser and NATSAdminPassword admit an operator with every
	// right in presenced's NATS account (buckets, streams, JetStream API)
	// on the client port (user default "admin"). Empty password: no admin.
	NATSAdminUser, NATSAdminPassword string
	// ClusterUser and ClusterPassword authenticate routes both ways: every
	// node of a cluster uses the same (user default "presenced"); routes
	// without credentials of their own get them.
	ClusterUser, ClusterPassword string
	// ClusterTLSCertFile, ClusterTLSKeyFile and ClusterTLSCAFile encrypt
	// routes; peers must present a certificate the CA signed.
	ClusterTLSCertFile, ClusterTLSKeyFile, ClusterTLSCAFile string
	// ClusterInsecure lets a cluster run without route authentication
	// (neither ClusterPassword nor route TLS), for networks where every
	// host that can reach the route port is trusted.
	ClusterInsecure bool

	// AdminToken, when set, is the admin API token (instead of one
	// generated on first run).
	AdminToken string

	// JWTAudience and JWTIssuer, when set, are the aud and iss a user JWT
	// must carry. JWTMaxLifetime bounds a JWT's life, exp - iat (exp - now
	// without iat) (default 24h).
	JWTAudience, JWTIssuer string
	JWTMaxLifetime         time.Duration
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// JWTSecret verifies HS256 user tokens. JWTPublicKeys is PEM with RSA or
	// EC public keys that verify RS256 and ES256 user tokens.
	JWTSecret     string
	JWTPublicKeys []byte

	// PresenceVisibility is whose presence a user may see: "shared-groups"
	// (the default: the users they share a group with) or "all".
	PresenceVisibility string

	// AllowedOrigins lists the Origin values browsers may open WebSockets
	// from ("*" any). Empty allows only same-host origins.
	AllowedOrigins []string

	// Presence settings (zero: the presence package's defaults).
	Grace, LeaseTTL, LeaseRefresh, AutoAway, Coalesce time.Duration
	// FanoutBudget bounds the batches per second handed to subscribers
	// (presence.Config.FanoutBudget; 0: its default).
	FanoutBudget int
	// HistoryPeriod is the fine sample period of the online history
	// (default 10s; the coarse one is six of them). Every node of a
	// cluster must use the same; tests shorten it.
	HistoryPeriod time.Duration
	// PresenceStorage is the presence bucket's storage: "file" (the
	// default: backend sources and manual statuses survive a restart of
	// every server) or "memory" (they do not).
	PresenceStorage string

	// WebhookQueueLimit bounds the changes the webhooks' change stream
	// keeps (besides 24 hours and 1 GiB); past it the oldest are dropped,
	// delivered or not, and counted (default: the webhook package's).
	WebhookQueueLimit int
	// WebhookAllowPrivate lets webhooks target loopback, private,
	// link-local and other non-public addresses.
	WebhookAllowPrivate bool

	// StartupTimeout bounds Start (default 60s): a step that cannot finish
	// (a store that does not answer, a cluster without a quorum) fails the
	// start with its cause instead of hanging.
	StartupTimeout time.Duration
	// ShutdownTimeout bounds Shutdown as the command uses it (default
	// 30s): writing the sessions' grace, draining NATS and stopping the
	// embedded server all end by then.
	ShutdownTimeout time.Duration

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
	if c.StartupTimeout <= 0 {
		c.StartupTimeout = time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.JWTMaxLifetime <= 0 {
		c.JWTMaxLifetime = 24 * time.Hour
	}
	c.Limits.setDefaults()
	switch c.PresenceStorage {
	case "":
		c.PresenceStorage = "file"
	case "file", "memory":
	default:
		return fmt.Errorf("%w: --presence-storage %q: want file or memory", ErrConfig, c.PresenceStorage)
	}
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
	if c.ClusterName != "" && len(c.Routes) == 0 {
		return fmt.Errorf("%w: --cluster-name needs --routes naming the other nodes (a single node needs no --cluster-name)", ErrConfig)
	}
	if err := c.checkNATSAuth(); err != nil {
		return err
	}
	return nil
}
