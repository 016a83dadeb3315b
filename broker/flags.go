package broker

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Flags registers every option of the presenced command on fs, with its
// default, and returns a function that builds the Config once fs is parsed.
// Environment variables PRESENCED_<FLAG> (upper case, '-' as '_') and a
// config file are layered on by the caller (see cmd/presenced).
func Flags(fs *flag.FlagSet) (build func() (Config, error)) {
	var c Config
	var routes, origins, jwtKeysFile, logLevel string
	fs.StringVar(&c.NodeName, "node-name", "", "name of this node (default: hostname plus a random suffix)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory of the embedded nats-server's JetStream storage")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "address of the HTTP and WebSocket API")
	fs.StringVar(&c.NATSURL, "nats-url", "", "external NATS cluster URL(s); when set no nats-server is embedded")
	fs.StringVar(&c.NATSCredsFile, "nats-creds", "", "credentials file for --nats-url")
	fs.StringVar(&c.NATSCAFile, "nats-ca", "", "CA certificate file for TLS to --nats-url")
	fs.StringVar(&c.NATSCertFile, "nats-cert", "", "client certificate file for TLS to --nats-url")
	fs.StringVar(&c.NATSKeyFile, "nats-key", "", "client key file for TLS to --nats-url")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "open the embedded nats-server's client port on this address (e.g. 127.0.0.1:4222); closed when empty")
	fs.StringVar(&c.ClusterName, "cluster-name", "", "join embedded nats-servers into this cluster")
	fs.StringVar(&c.ClusterListen, "cluster-listen", "", "route listen address of the embedded nats-server (e.g. 0.0.0.0:6222)")
	fs.StringVar(&routes, "routes", "", "comma-separated route URLs of the other nodes (nats-route://host:6222)")
	fs.IntVar(&c.Replicas, "replicas", 0, "bucket replicas (default: 3 in a cluster of 3 or more JetStream servers, else 1)")
	readNATSSecrets := natsAuthFlags(fs, &c)
	readSecrets := secretFlags(fs,
		secret{"admin-token", "admin API token to use instead of one generated on first run (replaces the stored one)", &c.AdminToken},
		secret{"jwt-secret", "shared secret (32+ bytes) verifying HS256 user tokens", &c.JWTSecret},
		secret{"metrics-token", "bearer token /metrics requires (none when empty)", &c.MetricsToken},
	)
	fs.StringVar(&jwtKeysFile, "jwt-public-keys", "", "PEM file of RSA/EC public keys verifying RS256/ES256 user tokens")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "audience (aud) a user JWT must name; any when empty")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "issuer (iss) a user JWT must name; any when empty")
	fs.DurationVar(&c.JWTMaxLifetime, "jwt-max-lifetime", 24*time.Hour, "longest life a user JWT may have (exp - iat, or exp - now without iat)")
	fs.StringVar(&c.PresenceVisibility, "presence-visibility", "shared-groups", "whose presence a user sees, on every API: shared-groups (users sharing a group with them) or all (everyone, as Rocket.Chat)")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser Origins allowed to open WebSockets (* for any; default same host)")
	fs.DurationVar(&c.Grace, "grace", 5*time.Second, "how long a user's last closed session still counts before offline is announced")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 6*time.Second, "how long a node's lease lives without refresh")
	fs.DurationVar(&c.LeaseRefresh, "lease-refresh", 2*time.Second, "how often a node refreshes its lease")
	fs.DurationVar(&c.AutoAway, "auto-away", 0, "a session idle this long counts as away (0: never)")
	fs.DurationVar(&c.Coalesce, "coalesce", 25*time.Millisecond, "window in which deltas of one group are merged")
	fs.IntVar(&c.FanoutBudget, "fanout-budget", 0, "batches per second the node hands its subscribers at most: the coalescing window widens past it (default 40000 per CPU; -1: no budget)")
	fs.StringVar(&c.PresenceStorage, "presence-storage", "file", "storage of the presence bucket: file (backend and manual statuses survive a restart of every server) or memory (they do not)")
	fs.Int64Var(&c.Limits.MaxBodyBytes, "max-body-bytes", 1<<20, "largest JSON request body")
	fs.Int64Var(&c.Limits.MaxImportBytes, "max-import-bytes", 1<<30, "largest NDJSON import body")
	fs.Int64Var(&c.Limits.MaxFrameBytes, "max-frame-bytes", 64<<10, "largest WebSocket frame from a client")
	fs.IntVar(&c.Limits.MaxSubscriptions, "max-subscriptions", 1000, "groups one WebSocket may subscribe")
	fs.Float64Var(&c.Limits.OpsPerSecond, "ops-per-second", 50, "ops one WebSocket may send per second")
	fs.IntVar(&c.Limits.WriteQueue, "write-queue", 256, "pending batches per WebSocket before it is cut as a slow consumer")
	fs.DurationVar(&c.Limits.IdleTimeout, "idle-timeout", 60*time.Second, "close a WebSocket silent for this long")
	fs.Float64Var(&c.Limits.RESTRate, "rest-rate", 100, "REST calls per second per token and per IP (negative: no limit)")
	fs.IntVar(&c.Limits.RESTBurst, "rest-burst", 200, "burst of --rest-rate")
	fs.IntVar(&c.Limits.MaxConnections, "max-connections", 0, "open HTTP and WebSocket connections; past it new ones get 503 at once (default: the open files limit less 100; a value that leaves fewer than the descriptors the node holds when it starts, 32 refusals and 32 more free is lowered)")
	fs.IntVar(&c.WebhookQueueLimit, "webhook-queue-limit", 1000000, "changes the webhooks' change stream keeps for failing endpoints (besides 24h and 1 GiB) before the oldest are dropped")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", false, "let webhooks target loopback, private, link-local and other non-public addresses")
	fs.StringVar(&c.TLSCertFile, "tls-cert", "", "certificate file to serve HTTPS and WSS")
	fs.StringVar(&c.TLSKeyFile, "tls-key", "", "key file for --tls-cert")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve pprof on this loopback address (off when empty)")
	fs.DurationVar(&c.StartupTimeout, "startup-timeout", time.Minute, "give up starting after this long, saying which step did not finish")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "after SIGTERM, exit within this long; past it say which step did not finish and exit 1")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.Bool("log-json", false, "log JSON even on a terminal")
	fs.String("config", "", "config file: one 'flag value' per line, '#' comments")
	return func() (Config, error) {
		c.Routes = splitList(routes)
		if err := readNATSSecrets(); err != nil {
			return Config{}, err
		}
		if err := readSecrets(); err != nil {
			return Config{}, err
		}
		c.AllowedOrigins = splitList(origins)
		if jwtKeysFile != "" {
			b, err := os.ReadFile(jwtKeysFile)
			if err != nil {
				return Config{}, fmt.Errorf("%w: --jwt-public-keys: %v", ErrConfig, err)
			}
			c.JWTPublicKeys = b
		}
		switch logLevel {
		case "debug", "info", "warn", "error":
		default:
			return Config{}, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", ErrConfig, logLevel)
		}
		return c, nil
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// secret is a flag whose value should stay out of process lists: it can
// also be read from a file, --<name>-file.
type secret struct {
	name, usage string
	into        *string
}

// secretFlags registers --<name> and --<name>-file for each secret and
// returns a function that reads the files once fs is parsed.
func secretFlags(fs *flag.FlagSet, secrets ...secret) (readFiles func() error) {
	files := make([]string, len(secrets))
	for i, sc := range secrets {
		fs.StringVar(sc.into, sc.name, "", sc.usage+"; prefer --"+sc.name+"-file or the environment")
		fs.StringVar(&files[i], sc.name+"-file", "", "file holding --"+sc.name)
	}
	return func() error {
		for i, sc := range secrets {
			if files[i] == "" {
				continue
			}
			if *sc.into != "" {
				return fmt.Errorf("%w: --%s and --%s-file exclude each other", ErrConfig, sc.name, sc.name)
			}
			b, err := os.ReadFile(files[i])
			if err != nil {
				return fmt.Errorf("%w: --%s-file: %v", ErrConfig, sc.name, err)
			}
			if *sc.into = strings.TrimRight(string(b), "\r\n"); *sc.into == "" {
				return fmt.Errorf("%w: --%s-file: %s is empty", ErrConfig, sc.name, files[i])
			}
		}
		return nil
	}
}
