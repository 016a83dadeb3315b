package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/broker/compat/ddp"
	"github.com/presenced/presenced/broker/history"
	"github.com/presenced/presenced/broker/internal/netpoll"
	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"go.uber.org/zap"
)

// Server is one presenced node: NATS (embedded or external), the membership
// store, the presence engine, and the HTTP and WebSocket APIs.
type Server struct {
	cfg       Config
	log       *zap.Logger
	auth      *authenticator
	authority *membership.Authority // the authority rules: who may see, watch, issue, revoke
	limits    *rateLimits
	metrics   *metrics

	ns        *server.Server // nil with an external NATS
	natsConns int            // the bound of ns's client port, 0 when closed
	nsAuth    string         // seed of the broker's own user nkey of ns, made at each start
	nc        *nats.Conn
	js        jetstream.JetStream
	store     *membership.Store
	engine    *presence.Engine
	hooks     *webhook.Service
	history   *history.Service
	conns     *wsConns
	writers   *writerPool
	ops       *opPool
	poller    *netpoll.Poller             // idle WebSockets' readiness; nil: a reader goroutine each
	ddp       atomic.Pointer[ddp.Handler] // Rocket.Chat's realtime API, once started
	snaps     snapCache
	frameBufs bufPool // frames written once and dropped (snapshots)
	frames    frameCache
	quit      chan struct{} // stops the pinger
	lock      *os.File      // the data directory's lock, with an embedded NATS
	// unsubscribe ends the membership change feed's callback (authority_changes.go).
	unsubscribe func()
	state       stateWriter // the streams' last known state (damage.go)

	httpSrv  *http.Server
	ln       net.Listener
	limit    *limitListener // ln, counting its connections
	serveErr chan error
	pprof    *http.Server

	ready      chan struct{}
	isReady    atomic.Bool
	firstToken string

	stopOnce sync.Once

	// draining ends when the node begins to shut down: work that could
	// outlast the shutdown (an import) stops at once and says so.
	draining context.Context
	drain    context.CancelFunc
}

// New checks cfg and returns a server that Start runs.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		host, _ := os.Hostname()
		cfg.NodeName = sanitizeID(host) + "-" + randomHex(3)
	}
	if !membership.ValidID(cfg.NodeName) {
		return nil, fmt.Errorf("%w: node name %q: use 1 to 64 of A-Z a-z 0-9 _ -", ErrConfig, cfg.NodeName)
	}
	m := newMetrics()
	draining, drain := context.WithCancel(context.Background())
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger.With(zap.String("node", cfg.NodeName)),
		ready:    make(chan struct{}),
		serveErr: make(chan error, 1),
		metrics:  m,
		limits:   newRateLimits(cfg.Limits, m.rateLimited.WithLabelValues("rest")),
		conns:    &wsConns{},
		draining: draining,
		drain:    drain,
	}, nil
}

// Start brings the node up and returns once it is ready: NATS and JetStream
// answer, the indexes are loaded and HTTP is listening. On error everything
// started so far is stopped.
func (s *Server) Start(ctx context.Context) (err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartupTimeout)
	defer cancel()
	defer func() {
		if err != nil {
			s.kill()
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (--startup-timeout %v)", err, s.cfg.StartupTimeout)
			}
		}
	}()
	if s.cfg.NATSURL == "" {
		if s.lock, err = lockDataDir(s.cfg.DataDir); err != nil {
			return err
		}
	}
	if s.ns, err = s.startNATS(); err != nil {
		return err
	}
	if s.nc, err = s.connectNATS(s.ns); err != nil {
		return fmt.Errorf("broker: connect to NATS: %w", err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return fmt.Errorf("broker: jetstream: %w", err)
	}
	if err := s.waitJetStream(ctx); err != nil {
		return err
	}
	replicas := s.replicas(ctx)
	s.store, err = membership.Open(ctx, membership.Config{
		JetStream: s.js, Replicas: replicas, Logger: s.log,
	})
	if err != nil {
		return err
	}
	if s.authority, err = membership.NewAuthority(s.store.Index(), membership.Visibility(s.cfg.PresenceVisibility)); err != nil {
		return fmt.Errorf("%w: --presence-visibility: %v", ErrConfig, err)
	}
	if s.auth, err = newAuthenticator(s.store, s.cfg); err != nil {
		return err
	}
	s.auth.fresh = newFreshness(s.store.CaughtUp, s.log)
	if err := s.ensureAdminToken(ctx); err != nil {
		return err
	}
	s.unsubscribe = s.store.Subscribe(s.onMembershipChange)
	if err := s.startPresence(ctx, replicas); err != nil {
		return err
	}
	if s.hooks, err = webhook.New(webhook.Config{
		Conn: s.nc, JetStream: s.js, Replicas: replicas, Logger: s.log,
		QueueLimit: s.cfg.WebhookQueueLimit, NodeID: s.cfg.NodeName, AllowPrivate: s.cfg.WebhookAllowPrivate,
	}); err != nil {
		return err
	}
	if err := s.hooks.Start(ctx); err != nil {
		return err
	}
	if s.history, err = history.New(history.Config{
		JetStream: s.js, Replicas: replicas, Engine: s.engine, Users: s.store.Index(),
		Node: s.cfg.NodeName, Period: s.cfg.HistoryPeriod, Logger: s.log,
	}); err != nil {
		return err
	}
	if err := s.history.Start(ctx); err != nil {
		return err
	}
	s.writers = newWriterPool()
	s.ops = newOpPool()
	if p, err := netpoll.New(); err == nil {
		s.poller = p
	} else if !errors.Is(err, netpoll.ErrUnsupported) {
		s.log.Warn("idle WebSockets are read with a goroutine each", zap.Error(err))
	}
	rt, err := ddp.New(ddp.Config{
		Auth: s.auth.authenticate, Presence: s.engine, Users: s.store.Index(), Visibility: s.authority,
		Available: s.unavailable, AllowedOrigins: s.cfg.AllowedOrigins,
		MaxFrameBytes: s.cfg.Limits.MaxFrameBytes, OpsPerSecond: s.cfg.Limits.OpsPerSecond,
		WriteQueue: s.cfg.Limits.WriteQueue, IdleTimeout: s.cfg.Limits.IdleTimeout, Logger: s.log.Named("ddp"),
	})
	if err != nil {
		return err
	}
	if err := rt.Start(); err != nil {
		return err
	}
	s.ddp.Store(rt)
	s.quit = make(chan struct{})
	go s.pinger(s.quit)
	go s.auth.fresh.run(s.quit)
	s.registerMetrics()
	if err := s.startHTTP(); err != nil {
		return err
	}
	s.reportDamage(ctx)
	s.writeState(ctx)
	go s.stateLoop(s.quit)
	s.isReady.Store(true)
	close(s.ready)
	s.log.Info("ready", zap.String("http", s.Addr()), zap.Duration("startup", time.Since(start)))
	return nil
}

// replicas is the bucket replication factor: as configured, else R3 when
// the embedded server is routed to two or more others, or when an external
// NATS has three or more JetStream servers, else R1.
func (s *Server) replicas(ctx context.Context) int {
	if s.cfg.Replicas > 0 {
		return s.cfg.Replicas
	}
	if s.ns != nil {
		if s.cfg.ClusterName != "" && len(s.cfg.Routes)+1 >= 3 {
			return 3
		}
		return 1
	}
	// An external NATS: a probe stream with three replicas succeeds only on
	// a cluster of three or more JetStream servers. A cluster that forms
	// (started with its nodes, a server restarting) refuses it for a while
	// as if it were too small: its meta leader does not yet count every
	// server. Taken at its word, the node replicated its buckets once, on
	// one server whose loss then left every node without presence. A
	// refusal that may pass is asked again for up to replicasProbeWait.
	name := "presenced_probe_" + s.cfg.NodeName
	pctx, cancel := context.WithTimeout(ctx, replicasProbeWait)
	defer cancel()
	_, err := jskv.Retry(pctx, func(ctx context.Context) (jetstream.Stream, error) {
		return s.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{"presenced.probe." + s.cfg.NodeName},
			Storage: jetstream.MemoryStorage, Replicas: 3, MaxMsgs: 1,
		})
	})
	switch {
	case err != nil && jskv.Transient(err):
		s.log.Warn("buckets replicated once: the NATS cluster took no stream of three replicas within "+
			replicasProbeWait.String()+" (set --replicas to decide)", zap.Error(err))
		return 1
	case err != nil:
		s.log.Info("buckets replicated once: the NATS server takes no stream of three replicas", zap.Error(err))
		return 1
	}
	_ = s.js.DeleteStream(ctx, name)
	s.log.Info("buckets replicated three ways")
	return 3
}

// replicasProbeWait bounds how long a start asks an external NATS for a
// stream of three replicas while it refuses one for want of servers.
const replicasProbeWait = 15 * time.Second

// Ready is closed once Start has finished successfully.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the address HTTP listens on.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// NodeName returns the node's name.
func (s *Server) NodeName() string { return s.cfg.NodeName }

// ShutdownTimeout is how long the command gives Shutdown.
func (s *Server) ShutdownTimeout() time.Duration { return s.cfg.ShutdownTimeout }

// FirstRunToken returns the admin token generated by this start, or "" when
// the data directory already had one or the operator supplied it.
func (s *Server) FirstRunToken() string { return s.firstToken }

// NATSClientURL returns the URL external publishers use, or "" when the
// client port is closed. It carries no credentials.
func (s *Server) NATSClientURL() string {
	if s.ns == nil {
		return withoutUserinfo(s.cfg.NATSURL)
	}
	if s.cfg.NATSListen == "" {
		return ""
	}
	return s.ns.ClientURL()
}

// ClusterAddr returns the embedded server's route listen address, or "".
func (s *Server) ClusterAddr() string {
	if s.ns == nil || s.cfg.ClusterName == "" {
		return ""
	}
	if a := s.ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Shutdown stops the node gracefully: it stops accepting connections,
// finishes requests in flight, puts its sessions into their grace period,
// and shuts NATS down cleanly. It returns by ctx's deadline: the writes on
// the way out get three quarters of the time left, so that a store that
// does not answer still leaves time to close NATS, and a step still
// running at the deadline is left to finish on its own (the data directory
// stays locked until the embedded server is down). Its error then wraps
// ErrStopUnfinished and names the step; other errors are writes that did
// not land.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() { err = s.shutdown(ctx) })
	return err
}

func (s *Server) shutdown(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
		step string
	)
	at := func(name string) {
		mu.Lock()
		step = name
		mu.Unlock()
	}
	keep := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.isReady.Store(false)
		wctx, cancel := withReserve(ctx)
		defer cancel()
		at("closing the realtime API")
		keep(s.ddp.Load().Shutdown(wctx))
		if s.httpSrv != nil {
			at("closing HTTP and WebSocket connections")
			keep(s.shutdownHTTP(wctx))
		}
		if s.hooks != nil {
			at("stopping webhook delivery")
			keep(s.hooks.Shutdown(wctx))
		}
		if s.history != nil {
			at("stopping the history recorder")
			keep(s.history.Shutdown(wctx))
		}
		at("writing the sessions' grace")
		keep(s.stopPresence(wctx))
		if s.quit != nil { // started: the streams are there to record
			at("recording the streams' state")
			sctx, cancel := context.WithTimeout(wctx, 2*time.Second)
			s.writeState(sctx)
			cancel()
		}
		s.stopRest(ctx, at)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		errs = append(errs, fmt.Errorf("%s: %w", step, ErrStopUnfinished))
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// withReserve is ctx with a deadline that leaves a quarter of the time ctx
// has left for what comes after.
func withReserve(ctx context.Context) (context.Context, context.CancelFunc) {
	end, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, end.Add(-time.Until(end)/4))
}

// kill stops the node at once, as if the process died: the NATS
// connection goes first, so that nothing more is written on the way down,
// then the sockets are dropped without a close frame. Start uses it to
// undo a failed start; tests use it to simulate a node's death.
func (s *Server) kill() {
	s.stopOnce.Do(func() {
		s.isReady.Store(false)
		if s.nc != nil {
			s.nc.Close()
		}
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
		for _, wc := range s.conns.all() {
			_ = wc.c.CloseNow()
			wc.closed() // an idle one has no reader to find it closed
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // nothing queued is delivered, nothing more is written
		// The ended ctx makes the realtime API drop its sockets.
		_ = s.ddp.Load().Shutdown(ctx)
		if s.hooks != nil {
			_ = s.hooks.Shutdown(ctx)
		}
		if s.history != nil {
			_ = s.history.Shutdown(ctx)
		}
		_ = s.stopPresence(ctx)
		s.stopRest(context.Background(), func(string) {})
	})
}

// stopRest stops the pools, the store, NATS and the embedded server, in
// that order, telling at each step's name, and releases the data
// directory once the server is down. ctx bounds the NATS connection's
// drain: past it the connection is closed instead.
func (s *Server) stopRest(ctx context.Context, at func(step string)) {
	if s.quit != nil {
		close(s.quit)
	}
	at("stopping the WebSocket op workers")
	if s.ops != nil {
		s.ops.stop()
	}
	if s.poller != nil {
		_ = s.poller.Close()
	}
	at("stopping the WebSocket writers")
	if s.writers != nil {
		s.writers.stop()
	}
	if s.pprof != nil {
		_ = s.pprof.Close()
	}
	at("closing the membership store")
	if s.store != nil {
		s.store.Close()
	}
	at("draining the NATS connection")
	if s.nc != nil {
		s.drainNATS(ctx)
	}
	at("stopping the embedded NATS server")
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	if s.lock != nil {
		_ = s.lock.Close() // releases the lock
	}
}

// drainNATS drains the connection: what its subscriptions hold is handled
// and what it publishes is flushed. When ctx ends first (NATS does not
// answer) the connection is closed instead.
func (s *Server) drainNATS(ctx context.Context) {
	if err := s.nc.Drain(); err != nil {
		s.nc.Close()
		return
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.nc.IsDraining() {
		select {
		case <-ctx.Done():
			s.nc.Close()
			return
		case <-tick.C:
		}
	}
}

// ensureAdminToken makes sure an admin token exists: the operator's, or one
// generated on first run, shown once through FirstRunToken. The write is
// asked again while the store does not answer (a cluster forming).
func (s *Server) ensureAdminToken(ctx context.Context) error {
	const id = "admin"
	spec := membership.TokenSpec{ID: id, Name: "first-run admin token", Scopes: []string{membership.ScopeAdmin}}
	switch t, ok := s.store.Index().Token(id); {
	case s.cfg.AdminToken != "" && ok && t.Hash == membership.HashToken(s.cfg.AdminToken):
		return nil
	case s.cfg.AdminToken != "":
		spec.Name, spec.Secret = "operator admin token", s.cfg.AdminToken
	case ok:
		return nil
	default:
		// One secret for every attempt: a write that landed unanswered
		// stores the secret this start prints.
		spec.Secret = membership.NewTokenSecret()
	}
	_, err := jskv.Retry(ctx, func(ctx context.Context) (membership.Token, error) {
		_, tok, err := s.store.CreateToken(ctx, spec)
		return tok, err
	})
	if err != nil {
		return err
	}
	if s.cfg.AdminToken == "" {
		s.firstToken = spec.Secret
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sanitizeID(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < 48; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			out = append(out, c)
		} else {
			out = append(out, '-')
		}
	}
	if len(out) == 0 {
		return "node"
	}
	return string(out)
}
