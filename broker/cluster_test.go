package broker_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/protocol"
	"go.uber.org/zap/zaptest"
)

type clusterNode struct {
	*testServer
	name, dir, clusterAddr string
	routes                 []string
	mods                   []func(*broker.Config) // applied to clusterConfig
}

// testClusterPassword authenticates the routes of every test cluster.
const testClusterPassword = "test-cluster-password-0123"

// clusterConfig is how every node of a test cluster is configured: short
// leases so that a killed node is noticed within seconds, routes with
// credentials.
func clusterConfig(t testing.TB, n *clusterNode) broker.Config {
	return broker.Config{
		NodeName:        n.name,
		DataDir:         n.dir,
		HTTPAddr:        "127.0.0.1:0",
		AdminToken:      testAdminToken,
		JWTSecret:       testJWTSecret,
		ClusterName:     "test",
		ClusterListen:   n.clusterAddr,
		ClusterPassword: testClusterPassword,
		Routes:          n.routes,
		Grace:           time.Second,
		LeaseTTL:        2 * time.Second,
		LeaseRefresh:    500 * time.Millisecond,
		Logger:          zaptest.NewLogger(t).Named(n.name),
	}
}

// startCluster starts three nodes whose embedded nats-servers route to each
// other, all at once: JetStream's R3 buckets need every peer. Route ports
// are picked free beforehand, which can race with other processes taking
// them, so a start that found its port taken is tried again on new ports.
// Any other failure is the test's: a cluster must form whenever its nodes
// start together.
func startCluster(t testing.TB, mods ...func(*broker.Config)) []*clusterNode {
	t.Helper()
	var err error
	for range 3 {
		var nodes []*clusterNode
		if nodes, err = tryStartCluster(t, mods); err == nil {
			return nodes
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		t.Logf("cluster start found a port taken, trying new ports: %v", err)
	}
	t.Fatal(err)
	return nil
}

func tryStartCluster(t testing.TB, mods []func(*broker.Config)) ([]*clusterNode, error) {
	nodes := make([]*clusterNode, 3)
	for i, port := range natstest.FreePorts(t, len(nodes)) {
		nodes[i] = &clusterNode{name: fmt.Sprintf("n%d", i+1), dir: t.TempDir(),
			clusterAddr: fmt.Sprintf("127.0.0.1:%d", port), mods: mods}
	}
	for i, n := range nodes {
		for j, o := range nodes {
			if i != j {
				n.routes = append(n.routes, "nats-route://"+o.clusterAddr)
			}
		}
	}
	for _, err := range startNodes(t, nodes) {
		if err != nil {
			for _, n := range nodes {
				if n.testServer != nil {
					n.Kill()
				}
			}
			return nil, err
		}
	}
	return nodes, nil
}

// startNodes starts nodes all at once, as a cluster's nodes must (its R3
// streams need every peer), and returns each one's error.
func startNodes(t testing.TB, nodes []*clusterNode) []error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = startNode(t, n) })
	}
	wg.Wait()
	return errs
}

func startNode(t testing.TB, n *clusterNode) error {
	cfg := clusterConfig(t, n)
	for _, m := range n.mods {
		m(&cfg)
	}
	s, err := broker.New(cfg)
	if err != nil {
		return err
	}
	// Generous: a node that restarts catches its replicas up first, on
	// two cores shared with the race detector and two other nodes.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	n.testServer = &testServer{Server: s, URL: broker.BaseURL(s.Addr()), Admin: testAdminToken}
	return nil
}

// waitAgree waits until every node's engine serves the same snapshot of
// group at the same revision, and returns it.
func waitAgree(t testing.TB, group string, nodes ...*clusterNode) string {
	t.Helper()
	var last []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		last = last[:0]
		for _, n := range nodes {
			snap := n.Engine().Snapshot(group)
			last = append(last, fmt.Sprintf("rev=%d online=%d total=%d members=%v", snap.Rev, snap.Online, snap.Total, snap.Members))
		}
		if len(slices.Compact(slices.Clone(last))) == 1 {
			return last[0]
		}
	}
	t.Fatalf("nodes never agreed on %s:\n%v", group, last)
	return ""
}

func seedCluster(t testing.TB, n *clusterNode, users ...string) {
	call(t, "POST", n.URL+"/v1/groups", n.Admin, map[string]any{"id": "team", "name": "Team"}, nil)
	for _, u := range users {
		call(t, "POST", n.URL+"/v1/users", n.Admin, map[string]any{"id": u, "username": "user-" + u}, nil)
		call(t, "PUT", n.URL+"/v1/groups/team/members/"+u, n.Admin, nil, nil)
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	seedCluster(t, a, "alice", "bob", "carol")
	for _, n := range nodes {
		waitMembers(t, n.testServer, "team", 3)
	}

	t.Run("a client on one node sees a user of another come, change and leave", func(t *testing.T) {
		watcher := mustDial(t, a.testServer, userJWT(t, "alice", time.Hour))
		snap := watcher.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
		if snap.Op != protocol.OpSnapshot {
			t.Fatalf("subscribe: %+v", snap)
		}
		bob := mustDial(t, b.testServer, userJWT(t, "bob", time.Hour))
		watcher.statusIn("team", "bob", protocol.StatusOnline)
		bob.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusAway, Text: "lunch"})
		if m := watcher.statusIn("team", "bob", protocol.StatusAway); m.Text != "lunch" {
			t.Fatalf("away delta: %+v", m)
		}
		bob.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusOnline}) // clears the manual away
		watcher.statusIn("team", "bob", protocol.StatusOnline)
		_ = bob.c.CloseNow()
		watcher.statusIn("team", "bob", protocol.StatusOffline)
		waitAgree(t, "team", a, b, c)
	})

	t.Run("a client that reconnects to another node resumes from its revision", func(t *testing.T) {
		cl := mustDial(t, a.testServer, userJWT(t, "alice", time.Hour))
		snap := cl.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
		_ = cl.c.CloseNow()
		carol := mustDial(t, c.testServer, userJWT(t, "carol", time.Hour))
		carol.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy})
		waitAgree(t, "team", a, b, c)
		cl2 := mustDial(t, b.testServer, userJWT(t, "alice", time.Hour))
		r := cl2.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team", Rev: snap.Rev, Epoch: snap.Epoch})
		if r.Op != protocol.OpResumed {
			t.Fatalf("resume on another node answered %+v", r)
		}
		var got []string
		for _, m := range r.Changes {
			got = append(got, fmt.Sprintf("%s=%s", m.User, m.Status))
		}
		// carol came online and turned busy; no other change happened.
		if want := []string{"carol=online", "carol=busy"}; !slices.Equal(got, want) && !slices.Equal(got, want[1:]) {
			t.Fatalf("resumed changes %v, want %v", got, want)
		}
		_ = carol.c.Close(1000, "")
		_ = cl2.c.Close(1000, "")
	})

	t.Run("a node killed abruptly: its users go offline everywhere, exactly once", func(t *testing.T) {
		waitAgree(t, "team", a, b, c)
		watcher := mustDial(t, a.testServer, userJWT(t, "alice", time.Hour))
		watcher.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
		mustDial(t, c.testServer, userJWT(t, "bob", time.Hour))
		watcher.statusIn("team", "bob", protocol.StatusOnline)
		killed := time.Now()
		c.Kill()
		for offline := false; !offline; {
			f := watcher.nextWithin(30 * time.Second)
			for _, m := range f.Changes {
				offline = offline || f.Op == protocol.OpDelta && m.User == "bob" && m.Status == protocol.StatusOffline
			}
		}
		took := time.Since(killed)
		// About lease TTL + refresh when the killed node led no stream;
		// when it led the presence stream, JetStream's leader election and
		// the watchers' consumer recovery come on top (seen up to ~19s).
		if took > 30*time.Second {
			t.Fatalf("bob offline only %v after his node was killed", took)
		}
		t.Logf("bob offline %v after his node was killed", took)
		// Exactly once: no further change of bob within a lease period.
		deadline := time.After(3 * time.Second)
		for {
			select {
			case f := <-watcher.frames:
				for _, m := range f.Changes {
					if m.User == "bob" {
						t.Fatalf("second change of bob after the kill: %+v", m)
					}
				}
				continue
			case <-deadline:
			}
			break
		}
		waitAgree(t, "team", a, b)
	})

	t.Run("a node that joins later serves the same snapshot once it is ready", func(t *testing.T) {
		// Let the sessions of the subtests before linger out, then keep
		// one user online while the new node starts.
		for deadline := time.Now().Add(30 * time.Second); a.Engine().Stats().Sessions != 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("sessions left: %+v", a.Engine().Stats())
			}
		}
		mustDial(t, a.testServer, userJWT(t, "carol", time.Hour))
		for deadline := time.Now().Add(10 * time.Second); a.Engine().Status("carol").Status == protocol.StatusOffline; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("carol never came online (her manual busy from before stays)")
			}
		}
		members := func(n *clusterNode) string {
			snap := n.Engine().Snapshot("team")
			return fmt.Sprintf("online=%d total=%d members=%v", snap.Online, snap.Total, snap.Members)
		}
		want := members(a)
		d := &clusterNode{name: "n4", dir: t.TempDir(), clusterAddr: fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t)),
			routes: []string{"nats-route://" + a.clusterAddr, "nats-route://" + b.clusterAddr, "nats-route://" + c.clusterAddr}}
		if err := startNode(t, d); err != nil {
			t.Fatal(err)
		}
		// Start returned, so the node reports ready: it must not need to
		// catch up any more.
		if got := members(d); got != want {
			t.Fatalf("the new node is ready with\n%s\nthe others serve\n%s", got, want)
		}
		var ready struct{ Ready bool }
		if st := call(t, "GET", d.URL+"/readyz", "", nil, &ready); st != 200 || !ready.Ready {
			t.Fatalf("new node not ready: %d", st)
		}
		waitAgree(t, "team", a, b, d)
	})
}

// TestClusterRollingRestart stops a node gracefully while its user moves to
// another node within the grace period: nobody sees that user go offline.
// The node then restarts on its data dir and, once ready, serves the same
// snapshot at the same revision as the others.
func TestClusterRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	seedCluster(t, a, "alice", "bob")
	for _, n := range nodes {
		waitMembers(t, n.testServer, "team", 2)
	}
	watcher := mustDial(t, a.testServer, userJWT(t, "alice", time.Hour))
	watcher.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	mustDial(t, c.testServer, userJWT(t, "bob", time.Hour))
	watcher.statusIn("team", "bob", protocol.StatusOnline)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mustDial(t, b.testServer, userJWT(t, "bob", time.Hour)) // reconnects elsewhere
	deadline := time.After(4 * time.Second)                 // well past grace and lease
	for {
		select {
		case f := <-watcher.frames:
			for _, m := range f.Changes {
				if m.User == "bob" && m.Status == protocol.StatusOffline {
					t.Fatalf("bob flapped offline during a rolling restart: %+v", f)
				}
			}
			continue
		case <-deadline:
		}
		break
	}

	// The node comes back on its data, catches up, and serves the same
	// snapshot as the others once it reports ready.
	if err := startNode(t, c); err != nil {
		t.Fatal(err)
	}
	got := waitAgree(t, "team", a, b, c)
	t.Logf("agreed after restart: %s", got)
	var ready struct{ Ready bool }
	if st := call(t, "GET", c.URL+"/readyz", "", nil, &ready); st != 200 || !ready.Ready {
		t.Fatalf("restarted node not ready: %d", st)
	}
}

// BenchmarkClusterDeltaLatency measures how long a status change made on one
// node takes to reach a subscriber on another: p50 and p99 over b.N changes.
// Changes are spaced past the 25 ms coalescing window, so each is the first
// of a window and goes out at once: this is the latency of an isolated
// change. Changes that follow each other closer pay up to one window.
func BenchmarkClusterDeltaLatency(b *testing.B) {
	nodes := startCluster(b)
	seedCluster(b, nodes[0], "alice", "bob")
	for _, n := range nodes {
		waitMembers(b, n.testServer, "team", 2)
	}
	watcher := mustDial(b, nodes[0].testServer, userJWT(b, "alice", time.Hour))
	watcher.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	bob := mustDial(b, nodes[1].testServer, userJWT(b, "bob", time.Hour))
	watcher.statusIn("team", "bob", protocol.StatusOnline)
	lat := make([]time.Duration, 0, b.N)
	statuses := []protocol.Status{protocol.StatusAway, protocol.StatusBusy}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		time.Sleep(30 * time.Millisecond)
		b.StartTimer()
		st := statuses[i%2]
		start := time.Now()
		bob.send(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: st, Text: fmt.Sprint(i)})
		watcher.statusIn("team", "bob", st)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
