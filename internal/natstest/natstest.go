// Package natstest starts an in-process nats-server with JetStream for tests.
//
// Every server listens on 127.0.0.1 on a random port, keeps its JetStream
// storage in a t.TempDir and is shut down by t.Cleanup.
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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
	if o.ClusterName != "" {
		opts.Cluster.Name = o.ClusterName
		opts.Cluster.Host = "127.0.0.1"
		opts.Cluster.Port = o.ClusterPort
		if opts.Cluster.Port == 0 {
			opts.Cluster.Port = -1
		}
		opts.Routes = server.RoutesFromStr(joinComma(o.Routes))
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

// ClusterOf is StartCluster that leaves the starts to the test: start(i)
// starts server i (from 0), when the test wants it up.
func ClusterOf(t testing.TB, n int) (start func(i int) *server.Server) {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
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
