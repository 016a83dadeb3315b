package broker

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/presenced/presenced/presence"
	"go.uber.org/zap"
)

// Accounts of the embedded nats-server. Every node of a cluster declares the
// same ones, with the same names: JetStream's assets belong to an account by
// name, and so do the replicas of a bucket on other nodes. The system
// account stays nats-server's own "$SYS", with no user.
const (
	// natsAccount holds JetStream (the buckets, the webhooks' stream) and
	// every subject presenced uses. Only presenced's own connection and the
	// optional admin are in it.
	natsAccount = "PRESENCED"
	// natsPublisherAccount holds external publishers. It has no JetStream
	// and nothing of natsAccount but what that exports: the status publish
	// service and the change feed. Its inboxes are its own, so a publisher
	// never sees the replies and watch deliveries of presenced's connection.
	natsPublisherAccount = "PUBLISHERS"
)

// Defaults of the NATS user names.
const (
	defaultPublisherUser = "publisher"
	defaultAdminUser     = "admin"
	defaultClusterUser   = "presenced"
)

// natsAccounts is the accounts block of the embedded server's
// configuration. Users are added in code: their secrets never go through a
// configuration text.
func natsAccounts() string {
	return fmt.Sprintf(`accounts {
	%[1]s {
		jetstream: enabled
		exports [
			{ service: %[3]q }
			{ stream: %[4]q }
		]
	}
	%[2]s {
		imports [
			{ service: { account: %[1]s, subject: %[3]q } }
			{ stream: { account: %[1]s, subject: %[4]q } }
		]
	}
}`, natsAccount, natsPublisherAccount, presence.SubjectPublish, presence.SubjectChanges+">")
}

// publisherPermissions are a publisher's rights within its account: send a
// status event and read the answer, follow the changes. The account holds
// nothing else; the permissions say so a second time.
func publisherPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{presence.SubjectPublish}},
		Subscribe: &server.SubjectPermission{Allow: []string{presence.SubjectChanges + ">", nats.InboxPrefix + ">"}},
	}
}

// natsOwnConns is room on the embedded server's client port for the node's
// own in-process connections, which count against its bound too.
const natsOwnConns = 16

// natsMaxConns bounds the connections of the embedded server's client port:
// with publishers (--nats-listen) a sixteenth of the open files limit, at
// least 64 and at most 1,024 (publishers are backend services, a few
// connections each); without, the node's own connections only (the port a
// cluster keeps open on loopback, where nobody else can sign in).
func natsMaxConns(publishers bool) int {
	if !publishers {
		return natsOwnConns
	}
	n := 1024
	if nofile := openFilesLimit(); nofile > 0 {
		n = min(max(nofile/16, 64), 1024)
	}
	return n + natsOwnConns
}

// startNATS starts the embedded nats-server with JetStream, or returns nil
// when an external NATS is configured.
func (s *Server) startNATS() (*server.Server, error) {
	if s.cfg.NATSURL != "" {
		return nil, nil
	}
	storeDir := filepath.Join(s.cfg.DataDir, "jetstream")
	// nats-server keeps its data in a "jetstream" folder of StoreDir.
	if err := s.adoptGlobalAccountStore(filepath.Join(storeDir, server.JetStreamStoreDir)); err != nil {
		return nil, err
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(natsAccounts()); err != nil {
		return nil, fmt.Errorf("broker: nats-server accounts: %w", err)
	}
	opts.ServerName = s.cfg.NodeName
	opts.JetStream = true
	opts.StoreDir = storeDir
	opts.NoSigs = true
	opts.NoLog = true
	// Presence writes are small and frequent; the defaults of a
	// general-purpose server are fine otherwise.
	opts.MaxPayload = 1 << 20
	if err := s.natsUsers(opts); err != nil {
		return nil, err
	}
	if s.cfg.NATSListen != "" {
		host, port, err := splitHostPort(s.cfg.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("%w: --nats-listen: %v", ErrConfig, err)
		}
		opts.Host, opts.Port = host, port
	} else if s.cfg.ClusterName != "" {
		// DontListen would also stop routing: keep the client port on a
		// random loopback port instead. Nobody can log in there: the only
		// user connects in-process.
		opts.Host, opts.Port = "127.0.0.1", -1
	} else {
		opts.DontListen = true
	}
	if !opts.DontListen {
		// Every connection on the client port takes a descriptor before
		// it signs in: bounded, so that a flood of them leaves the store
		// its files (see listener.go).
		opts.MaxConn = natsMaxConns(s.cfg.NATSListen != "")
		s.natsConns = opts.MaxConn
	}
	if s.cfg.ClusterName != "" {
		if err := s.natsCluster(opts); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: nats-server: %w", err)
	}
	fatal := make(chan string, 1)
	// At debug level nats-server's own debug lines come too: among them
	// every raft election, step by step.
	debug := s.log.Core().Enabled(zap.DebugLevel)
	ns.SetLoggerV2(natsLogger{l: s.log.Named("nats").Sugar(), fatal: fatal}, debug, false, false)
	ns.Start()
	// A listener that cannot bind (a port taken) is reported through the
	// logger only, and the server is then never ready: fail at once, with
	// the reason.
	for deadline := time.Now().Add(30 * time.Second); !ns.ReadyForConnections(50 * time.Millisecond); {
		select {
		case msg := <-fatal:
			ns.Shutdown()
			return nil, fmt.Errorf("broker: nats-server: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			return nil, fmt.Errorf("broker: nats-server did not become ready within 30s")
		}
	}
	return ns, nil
}

// natsUsers names everyone who may connect to the embedded server:
// presenced itself, in-process only, and with the client port open the
// publishers and the admin, over the network only. A server with users
// refuses every client that is none of them. presenced's own user is an
// nkey made at each start: its seed never leaves the process.
func (s *Server) natsUsers(opts *server.Options) error {
	account := func(name string) *server.Account {
		for _, a := range opts.Accounts {
			if a.Name == name {
				return a
			}
		}
		panic("broker: nats-server account " + name + " not declared")
	}
	only := func(connType string) map[string]struct{} { return map[string]struct{}{connType: {}} }
	self, err := nkeys.CreateUser()
	if err != nil {
		return fmt.Errorf("broker: nats-server user: %w", err)
	}
	seed, _ := self.Seed()
	pub, _ := self.PublicKey()
	s.nsAuth = string(seed)
	opts.Nkeys = []*server.NkeyUser{{
		Nkey: pub, Account: account(natsAccount), AllowedConnectionTypes: only(jwt.ConnectionTypeInProcess),
	}}
	if s.cfg.NATSListen == "" {
		return nil
	}
	if s.cfg.NATSPublisherPassword != "" {
		opts.Users = append(opts.Users, &server.User{
			Username: s.cfg.NATSPublisherUser, Password: s.cfg.NATSPublisherPassword, Permissions: publisherPermissions(),
			Account: account(natsPublisherAccount), AllowedConnectionTypes: only(jwt.ConnectionTypeStandard),
		})
	}
	if s.cfg.NATSPublisherNKey != "" {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{
			Nkey: s.cfg.NATSPublisherNKey, Permissions: publisherPermissions(),
			Account: account(natsPublisherAccount), AllowedConnectionTypes: only(jwt.ConnectionTypeStandard),
		})
	}
	if s.cfg.NATSAdminPassword != "" {
		opts.Users = append(opts.Users, &server.User{
			Username: s.cfg.NATSAdminUser, Password: s.cfg.NATSAdminPassword,
			Account: account(natsAccount), AllowedConnectionTypes: only(jwt.ConnectionTypeStandard),
		})
	}
	return nil
}

// natsCluster sets up the routes: their listener, their authorization and
// TLS, and the routes to the other nodes with the cluster's credentials.
func (s *Server) natsCluster(opts *server.Options) error {
	host, port, err := splitHostPort(s.cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("%w: --cluster-listen: %v", ErrConfig, err)
	}
	opts.Cluster.Name = s.cfg.ClusterName
	opts.Cluster.Host, opts.Cluster.Port = host, port
	if s.cfg.ClusterPassword != "" {
		opts.Cluster.Username, opts.Cluster.Password = s.cfg.ClusterUser, s.cfg.ClusterPassword
	}
	if s.cfg.ClusterTLSCertFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: s.cfg.ClusterTLSCertFile, KeyFile: s.cfg.ClusterTLSKeyFile, CaFile: s.cfg.ClusterTLSCAFile, Verify: true,
		})
		if err != nil {
			return fmt.Errorf("%w: --cluster-tls-*: %v", ErrConfig, err)
		}
		// A route is both ends at once: a peer that dials in must present
		// a certificate the CA signed (GenTLSConfig's ClientCAs), and so
		// must a peer dialled, as nats-server's own cluster tls block does.
		tc.RootCAs = tc.ClientCAs
		opts.Cluster.TLSConfig = tc
	}
	if s.cfg.ClusterInsecure && s.cfg.ClusterPassword == "" && s.cfg.ClusterTLSCertFile == "" {
		s.log.Warn("routes accept any peer (--cluster-insecure): whoever reaches the route port joins the cluster and reads and writes all of its data",
			zap.String("cluster-listen", s.cfg.ClusterListen))
	}
	routeKeepalive(opts)
	opts.Routes, err = routeURLs(s.cfg.Routes, s.cfg.ClusterUser, s.cfg.ClusterPassword)
	return err
}

// Route keepalive. A partition that drops packets closes no socket: a
// route idle through it stays open, its unanswered bytes in TCP's
// retransmission backoff, seconds apart by the time the network heals. By
// NATS's defaults (a ping every 30 s at most, two unanswered) a route is
// found dead a minute into the silence, so after a 20 s partition the
// routes of the presenced account still waited out that backoff: the healed
// node's writes found no stream 6 s after the heal, long after the raft
// groups, whose own routes had been closed and dialed again, had their
// leaders back. A ping every 2 s, three unanswered, closes a silent route
// within 6 to 8 s, and it is dialed afresh once the network answers.
const (
	routePingInterval = 2 * time.Second
	routeMaxPingsOut  = 3
)

func routeKeepalive(opts *server.Options) {
	opts.Cluster.PingInterval = routePingInterval
	opts.Cluster.MaxPingsOut = routeMaxPingsOut
}

// routeURLs parses the routes and gives those without credentials of their
// own the cluster's, so that operators write nats-route://host:6222 and keep
// the password out of the route list.
func routeURLs(routes []string, user, password string) ([]*url.URL, error) {
	var out []*url.URL
	for i, r := range routes {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || u.Hostname() == "" || u.Port() == "" {
			// Not echoed: a route may carry a password.
			return nil, fmt.Errorf("%w: --routes: route %d is not a URL like nats-route://host:6222", ErrConfig, i+1)
		}
		if u.User == nil && password != "" {
			u.User = url.UserPassword(user, password)
		}
		out = append(out, u)
	}
	return out, nil
}

// adoptGlobalAccountStore moves JetStream data written before the embedded
// server had accounts (in nats-server's global account, "$G") into
// natsAccount, so that a single node keeps its users, tokens and stated
// statuses. A cluster's data cannot be moved file by file (its meta group
// names the account of every stream), so a node refuses to start on it
// rather than start empty beside it.
func (s *Server) adoptGlobalAccountStore(storeDir string) error {
	old := filepath.Join(storeDir, "$G")
	if _, err := os.Stat(filepath.Join(old, "streams")); err != nil {
		return nil
	}
	dst := filepath.Join(storeDir, natsAccount)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(storeDir, "$SYS", "_js_")); err == nil {
		return fmt.Errorf("%w: %s holds a cluster's JetStream data from before NATS accounts (in account $G, now %s): "+
			"start the cluster on new data directories and import the membership again (presencectl import)", ErrConfig, storeDir, natsAccount)
	}
	if err := os.Rename(old, dst); err != nil {
		return fmt.Errorf("broker: moving JetStream data into account %s: %w", natsAccount, err)
	}
	s.log.Info("JetStream data moved into the NATS account", zap.String("from", old), zap.String("to", dst))
	return nil
}

// connectNATS opens the broker's client connection: in-process to the
// embedded server, or over the network to an external one.
func (s *Server) connectNATS(ns *server.Server) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("presenced " + s.cfg.NodeName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { s.log.Info("nats reconnected") }),
	}
	if ns != nil {
		self, err := nkeys.FromSeed([]byte(s.nsAuth))
		if err != nil {
			return nil, err
		}
		pub, _ := self.PublicKey()
		opts = append(opts, nats.InProcessServer(ns), nats.Nkey(pub, self.Sign))
		return nats.Connect("", opts...)
	}
	if s.cfg.NATSCredsFile != "" {
		opts = append(opts, nats.UserCredentials(s.cfg.NATSCredsFile))
	}
	if s.cfg.NATSCAFile != "" {
		opts = append(opts, nats.RootCAs(s.cfg.NATSCAFile))
	}
	if s.cfg.NATSCertFile != "" {
		opts = append(opts, nats.ClientCert(s.cfg.NATSCertFile, s.cfg.NATSKeyFile))
	}
	return nats.Connect(s.cfg.NATSURL, opts...)
}

// checkNATSAuth validates the NATS credentials of c and fills in the
// default user names. Opening the client port needs a credential, and a
// cluster needs route authentication unless the operator says the network
// is trusted.
func (c *Config) checkNATSAuth() error {
	if c.NATSURL != "" {
		if c.NATSPublisherPassword != "" || c.NATSPublisherNKey != "" || c.NATSAdminPassword != "" ||
			c.ClusterPassword != "" || c.ClusterTLSCertFile != "" || c.ClusterTLSKeyFile != "" || c.ClusterTLSCAFile != "" || c.ClusterInsecure {
			return fmt.Errorf("%w: --nats-url excludes the embedded server's --nats-publisher-*, --nats-admin-* and --cluster-*: an external NATS has its own users", ErrConfig)
		}
		return nil
	}
	if c.NATSPublisherUser == "" {
		c.NATSPublisherUser = defaultPublisherUser
	}
	if c.NATSAdminUser == "" {
		c.NATSAdminUser = defaultAdminUser
	}
	if c.ClusterUser == "" {
		c.ClusterUser = defaultClusterUser
	}
	if c.NATSPublisherUser == c.NATSAdminUser {
		return fmt.Errorf("%w: --nats-publisher-user and --nats-admin-user must differ", ErrConfig)
	}
	if c.NATSPublisherNKey != "" && !nkeys.IsValidPublicUserKey(c.NATSPublisherNKey) {
		return fmt.Errorf("%w: --nats-publisher-nkey: want a public user nkey (U...), not a seed", ErrConfig)
	}
	if c.NATSListen != "" && c.NATSPublisherPassword == "" && c.NATSPublisherNKey == "" && c.NATSAdminPassword == "" {
		return fmt.Errorf("%w: --nats-listen opens the NATS client port to publishers: set --nats-publisher-password "+
			"(or --nats-publisher-password-file, or --nats-publisher-nkey); anonymous clients are refused", ErrConfig)
	}
	tls := 0
	for _, f := range []string{c.ClusterTLSCertFile, c.ClusterTLSKeyFile, c.ClusterTLSCAFile} {
		if f != "" {
			tls++
		}
	}
	if tls != 0 && tls != 3 {
		return fmt.Errorf("%w: --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together", ErrConfig)
	}
	if c.ClusterName != "" && c.ClusterPassword == "" && tls == 0 && !c.ClusterInsecure {
		return fmt.Errorf("%w: --cluster-name: routes need authentication: set --cluster-password (or --cluster-password-file), "+
			"the same on every node, or --cluster-tls-cert/-key/-ca; --cluster-insecure runs them open on a network where every host is trusted", ErrConfig)
	}
	_, err := routeURLs(c.Routes, c.ClusterUser, c.ClusterPassword)
	return err
}

// natsAuthFlags registers the flags of the NATS credentials on fs and
// returns a function that reads the password files once fs is parsed.
func natsAuthFlags(fs *flag.FlagSet, c *Config) (readFiles func() error) {
	fs.StringVar(&c.NATSPublisherUser, "nats-publisher-user", defaultPublisherUser, "user name of external publishers on the --nats-listen port")
	fs.StringVar(&c.NATSPublisherNKey, "nats-publisher-nkey", "", "public user nkey (U...) of a publisher that signs with its seed, instead of or besides the password")
	fs.StringVar(&c.NATSAdminUser, "nats-admin-user", defaultAdminUser, "user name of an operator with every right in presenced's NATS account on the --nats-listen port")
	fs.StringVar(&c.ClusterUser, "cluster-user", defaultClusterUser, "user name routes authenticate with; the same on every node")
	fs.StringVar(&c.ClusterTLSCertFile, "cluster-tls-cert", "", "certificate file for TLS on routes")
	fs.StringVar(&c.ClusterTLSKeyFile, "cluster-tls-key", "", "key file for --cluster-tls-cert")
	fs.StringVar(&c.ClusterTLSCAFile, "cluster-tls-ca", "", "CA file that route peers' certificates must be signed by")
	fs.BoolVar(&c.ClusterInsecure, "cluster-insecure", false, "run routes without authentication (no --cluster-password nor --cluster-tls-*): only where every host that can reach --cluster-listen is trusted")
	return secretFlags(fs,
		secret{"nats-publisher-password", "password of --nats-publisher-user (or a bcrypt hash of it)", &c.NATSPublisherPassword},
		secret{"nats-admin-password", "password of --nats-admin-user (or a bcrypt hash of it); no admin when empty", &c.NATSAdminPassword},
		secret{"cluster-password", "password routes authenticate with, the same on every node", &c.ClusterPassword},
	)
}

// withoutUserinfo drops the credentials from a comma-separated URL list,
// so that it can be shown.
func withoutUserinfo(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = -1 // a random port, as nats-server spells it
	}
	return host, port, nil
}

// natsLogger forwards nats-server's logs to zap, and the first fatal one
// to fatal (nats-server goes on after it, but cannot serve).
type natsLogger struct {
	l     *zap.SugaredLogger
	fatal chan<- string
}

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debugf(format, v...) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warnf(format, v...) }
func (n natsLogger) Fatalf(format string, v ...any) {
	n.l.Errorf(format, v...)
	select {
	case n.fatal <- fmt.Sprintf(format, v...):
	default:
	}
}
func (n natsLogger) Errorf(format string, v ...any) { n.l.Errorf(format, v...) }
func (n natsLogger) Debugf(format string, v ...any) { n.l.Debugf(format, v...) }
func (n natsLogger) Tracef(format string, v ...any) {}

// waitJetStream returns once JetStream answers this node. In a cluster,
// requests sent before the server has found the meta leader get no answer
// at all, so ask in short attempts until one is answered.
func (s *Server) waitJetStream(ctx context.Context) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := s.js.AccountInfo(actx)
		cancel()
		if err == nil && (s.ns == nil || s.ns.JetStreamIsCurrent()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: JetStream not available: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
