// Package natstest starts an in-process nats-server with JetStream for tests.
//
// Every server listens on 127.0.0.1 on a random port, keeps its JetStream
// storage in a t.TempDir and is shut down by t.Cleanup.
package natstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/presenced/presenced/internal/faultnet"
)

// Options tunes a test server. The zero value is a standalone server.
type Options struct {
	// StoreDir overrides the JetStream storage directory (default t.TempDir()).
	StoreDir string
	// ServerName names the server (default: chosen by nats-server).
	ServerName string
	// Cluster joins the server to a route cluster when ClusterName is set.
	ClusterName string
	// ClusterPort is the route listen port; -1 picks a random one.
	ClusterPort int
	// Routes are route URLs of the other cluster members.
	Routes []string
	// NoAdvertise keeps the others from dialing the server on its own
	// route address: they reach it only by the Routes they were given.
	NoAdvertise bool
	// MaxStore bounds JetStream's file storage, in bytes (default: what
	// nats-server derives from the disk's free space).
	MaxStore int64
	// Configure, if set, changes the server's options last.
	Configure func(*server.Options)
}

// Start runs a JetStream-enabled nats-server and returns it once it is ready.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *server.Server {
	t.Helper()
	dir := o.StoreDir
	if dir == "" {
		dir = t.TempDir()
	}
	opts := &server.Options{
		ServerName: o.ServerName,
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	}
	if o.MaxStore > 0 {
		opts.JetStreamMaxStore = o.MaxStore
	}
	if o.ClusterName != "" {
		opts.Cluster.Name = o.ClusterName
		opts.Cluster.Host = "127.0.0.1"
		opts.Cluster.Port = o.ClusterPort
		if opts.Cluster.Port == 0 {
			opts.Cluster.Port = -1
		}
		opts.Routes = server.RoutesFromStr(joinComma(o.Routes))
		if o.NoAdvertise {
			// A server tells the others of each peer it meets, and they
			// dial a peer they have no route to yet at the address it
			// advertises, by default its own port: around the proxy of
			// a cut cluster. One where nothing listens fails that dial
			// (once: a route learned this way is not dialed again).
			opts.Cluster.Advertise = unreachable
			opts.Cluster.NoAdvertise = true
		}
	}
	if o.Configure != nil {
		o.Configure(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("natstest: server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// unreachable is a loopback address on which nothing listens: port 1 is
// privileged, and no service of this machine or CI takes it.
const unreachable = "127.0.0.1:1"

// Connect opens a client connection to s, closed by t.Cleanup.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Name("natstest"))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// StartCluster runs n JetStream servers named s1, s2, ... joined by routes
// on loopback ports picked free a moment before (another process may take
// one first: the test then fails to start, it does not hang).
func StartCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	start := ClusterOf(t, n)
	srvs := make([]*server.Server, n)
	for i := range srvs {
		srvs[i] = start(i)
	}
	return srvs
}

// StartCutCluster is StartCluster with every route through a proxy of
// its own (faultnet), one per server and peer. cut(i) silences server i's
// routes for good, both ways, and leaves its clients connected: to the
// rest of the cluster it is as gone as a server killed with SIGKILL, with
// no leadership handed over, while its clients see a server that answers
// nothing JetStream must ask the cluster for.
func StartCutCluster(t testing.TB, n int) (srvs []*server.Server, cut func(i int)) {
	t.Helper()
	ports := FreePorts(t, n)
	links := make([][]*faultnet.Proxy, n) // links[i][j]: i's route to j
	for i := range links {
		links[i] = make([]*faultnet.Proxy, n)
		for j := range links[i] {
			if j != i {
				links[i][j] = faultnet.Start(t, fmt.Sprintf("127.0.0.1:%d", ports[j]), 0)
			}
		}
	}
	srvs = make([]*server.Server, n)
	for i := range srvs {
		var routes []string
		for j := range links[i] {
			if j != i {
				routes = append(routes, "nats-route://"+links[i][j].Addr)
			}
		}
		srvs[i] = StartWith(t, Options{ServerName: fmt.Sprintf("s%d", i+1), ClusterName: "natstest",
			ClusterPort: ports[i], Routes: routes, NoAdvertise: true})
	}
	return srvs, func(i int) {
		for j := range n {
			if j != i {
				links[i][j].Silence()
				links[j][i].Silence()
			}
		}
	}
}

// ClusterOf is StartCluster that leaves the starts to the test: start(i)
// starts server i (from 0), when the test wants it up.
func ClusterOf(t testing.TB, n int) (start func(i int) *server.Server) {
	t.Helper()
	ports := FreePorts(t, n)
	return func(i int) *server.Server {
		t.Helper()
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		return StartWith(t, Options{ServerName: fmt.Sprintf("s%d", i+1), ClusterName: "natstest",
			ClusterPort: ports[i], Routes: routes})
	}
}

// StreamLeader waits up to 10 s for one of srvs to lead stream (of the
// global account) and returns its index; the test fails if none does.
func StreamLeader(t testing.TB, srvs []*server.Server, stream string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for i, s := range srvs {
			if s.JetStreamIsStreamLeader("$G", stream) {
				return i
			}
		}
	}
	t.Fatalf("natstest: stream %s has no leader", stream)
	return -1
}

// NewLeader watches srvs until one other than old leads stream, and then
// sends the time it saw it; it gives up when ctx ends.
func NewLeader(ctx context.Context, srvs []*server.Server, stream string, old int) <-chan time.Time {
	elected := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			for i, s := range srvs {
				if i != old && s.JetStreamIsStreamLeader("$G", stream) {
					elected <- time.Now()
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return elected
}
