package webhook_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/presence"
)

// failoverConfig makes a node that dies lose its webhooks within two
// seconds: long enough that a node slowed by a busy machine keeps them.
func failoverConfig(node string) webhook.Config {
	return webhook.Config{
		NodeID: node, BatchSize: 5, BatchWait: time.Millisecond, FailoverAfter: 2 * time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, StatusWait: 500 * time.Millisecond,
	}
}

// node is a Service with its connection, to kill it.
type node struct {
	*webhook.Service
	name string
	conn *nats.Conn
}

// startNodes starts a Service per name on one NATS server, with
// failoverConfig but FailoverAfter.
func startNodes(t *testing.T, failoverAfter time.Duration, names ...string) (nodes map[string]*node, pub func(cs ...presence.Change)) {
	t.Helper()
	srv := natstest.Start(t)
	nodes = map[string]*node{}
	for _, n := range names {
		cfg := failoverConfig(n)
		cfg.FailoverAfter = failoverAfter
		s, nc := newServiceConn(t, srv, cfg)
		nodes[n] = &node{s, n, nc}
	}
	nc := natstest.Connect(t, srv)
	return nodes, func(cs ...presence.Change) { publish(t, nc, cs...) }
}

// knownEverywhere waits until every node runs the webhook id.
func knownEverywhere(t *testing.T, nodes map[string]*node, id string) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, "every node to know the webhook", func() bool {
			_, ok := n.EndpointStats(id)
			return ok
		})
	}
}

// TestFailoverToAnotherNode kills the node delivering to a failing
// endpoint: another node carries on within about FailoverAfter, first with
// the batch the dead node was retrying, under the same id, and then every
// other change, in order.
func TestFailoverToAnotherNode(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	rc := newReceiver(t, func(int, *http.Request) int {
		if failing.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	nodes, pub := startNodes(t, 2*time.Second, "n1", "n2")
	w := register(t, nodes["n1"].Service, rc)
	knownEverywhere(t, nodes, w.ID)

	var cs []presence.Change
	for i := 1; i <= 30; i++ {
		cs = append(cs, change(i))
	}
	pub(cs...)
	eventually(t, "a few failed attempts", func() bool { return len(rc.all()) >= 3 })
	attempts := rc.all()
	dead := nodes[attempts[len(attempts)-1].node]
	retried := attempts[len(attempts)-1].body.Batch
	killed := time.Now()
	kill(t, dead.Service, dead.conn)
	var heir *node
	for _, n := range nodes {
		if n != dead {
			heir = n
		}
	}
	var took time.Duration
	eventually(t, "another node to take over", func() bool {
		for _, a := range rc.all() {
			if a.node == heir.name {
				took = time.Since(killed)
				return true
			}
		}
		return false
	})
	t.Logf("%s took over %v after %s was killed (FailoverAfter 2s)", heir.name, took, dead.name)
	for _, a := range rc.all() {
		if a.node == heir.name {
			if a.body.Batch != retried {
				t.Fatalf("the new node began with batch %s, want %s, the one the dead node was retrying", a.body.Batch, retried)
			}
			break
		}
	}
	failing.Store(false)
	eventually(t, "every change delivered", func() bool { return stats(t, heir.Service, w.ID).Delivered == 30 })
	checkDelivered(t, rc, seq(1, 30))
	if st := stats(t, heir.Service, w.ID); !st.Delivering || st.Queued != 0 {
		t.Errorf("the new node's stats %+v", st)
	}
}

// TestLost2xxRedeliversTheSameBatch has the receiver take a batch and
// answer only once its sender is dead: the 2xx is lost, so the next node
// sends that batch again, with the same id and body, for the receiver to
// drop.
func TestLost2xxRedeliversTheSameBatch(t *testing.T) {
	died := make(chan struct{})
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			select {
			case <-died:
			case <-t.Context().Done():
			}
		}
		return http.StatusOK
	})
	nodes, pub := startNodes(t, 2*time.Second, "n1", "n2")
	w := register(t, nodes["n1"].Service, rc)
	knownEverywhere(t, nodes, w.ID)
	var cs []presence.Change
	for i := 1; i <= 12; i++ {
		cs = append(cs, change(i))
	}
	pub(cs...)
	eventually(t, "the first attempt", func() bool { return len(rc.all()) == 1 })
	first := rc.all()[0]
	dead := nodes[first.node]
	kill(t, dead.Service, dead.conn)
	close(died)

	eventually(t, "every change delivered", func() bool {
		got := map[uint64]bool{}
		for _, c := range rc.acceptedChanges() {
			got[c.Rev] = true
		}
		return len(got) == 12
	})
	acc := rc.accepted()
	if acc[0].body.Batch != first.body.Batch || acc[1].body.Batch != first.body.Batch || string(acc[1].raw) != string(first.raw) {
		t.Fatalf("batches accepted %s then %s; want %s twice with the same body (its 2xx was lost)",
			acc[0].body.Batch, acc[1].body.Batch, first.body.Batch)
	}
	// Dropping what repeats a batch id leaves every change once, in order.
	seen := map[string]bool{}
	var got []uint64
	for _, a := range acc {
		if !seen[a.body.Batch] {
			seen[a.body.Batch] = true
			got = append(got, revs(a.body.Changes)...)
		}
	}
	if !slices.Equal(got, seq(1, 12)) {
		t.Fatalf("changes of the distinct batches %v, want 1..12", got)
	}
}

// TestShutdownHandsOverAtOnce stops the delivering node gracefully: it
// gives its webhook up, so another node carries on long before
// FailoverAfter.
func TestShutdownHandsOverAtOnce(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	rc := newReceiver(t, func(int, *http.Request) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	srv := natstest.Start(t)
	cfg := failoverConfig("n1")
	cfg.FailoverAfter = time.Minute
	n1 := newService(t, srv, cfg)
	cfg.NodeID = "n2"
	n2 := newService(t, srv, cfg)
	w := register(t, n1, rc)
	eventually(t, "n2 to know the webhook", func() bool { _, ok := n2.EndpointStats(w.ID); return ok })
	var cs []presence.Change
	for i := 1; i <= 20; i++ {
		cs = append(cs, change(i))
	}
	publish(t, natstest.Connect(t, srv), cs...)
	eventually(t, "a failed attempt", func() bool { return len(rc.all()) >= 1 })
	from := rc.all()[0].node
	leaving, staying := n1, n2
	if from == "n2" {
		leaving, staying = n2, n1
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stopped := time.Now()
	if err := leaving.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second) // a third of FailoverAfter
	for !stats(t, staying, w.ID).Delivering {
		if time.Now().After(deadline) {
			t.Fatal("no node took over after a graceful shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("taken over %v after a graceful shutdown (FailoverAfter 1m)", time.Since(stopped))
	failing.Store(false)
	eventually(t, "every change delivered", func() bool { return stats(t, staying, w.ID).Delivered == 20 })
	checkDelivered(t, rc, seq(1, 20))
}

// TestShutdownFinishesTheAttemptInFlight: a batch answered 2xx during
// Shutdown is acknowledged, so no node sends it again.
func TestShutdownFinishesTheAttemptInFlight(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			select {
			case <-release:
			case <-t.Context().Done():
			}
		}
		return http.StatusNoContent
	})
	srv := natstest.Start(t)
	n1 := newService(t, srv, failoverConfig("n1"))
	w := register(t, n1, rc)
	pub := natstest.Connect(t, srv)
	publish(t, pub, change(1), change(2), change(3))
	eventually(t, "the first attempt", func() bool { return len(rc.all()) == 1 })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- n1.Shutdown(ctx)
	}()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	n2 := newService(t, srv, failoverConfig("n2"))
	publish(t, pub, change(4))
	eventually(t, "the next change", func() bool { st, _ := n2.EndpointStats(w.ID); return st.Delivered >= 1 })
	first := rc.all()[0]
	got := revs(first.body.Changes)
	for _, a := range rc.all()[1:] {
		if a.body.Batch == first.body.Batch {
			t.Fatalf("batch %s sent again after it was delivered during Shutdown", a.body.Batch)
		}
		got = append(got, revs(a.body.Changes)...)
	}
	if !slices.Equal(got, seq(1, 4)) {
		t.Fatalf("delivered %v, want 1..4 once each", got)
	}
}

// TestOneNodeDeliversInOrder runs two nodes: one delivers every change, in
// order, and the status sums both.
func TestOneNodeDeliversInOrder(t *testing.T) {
	rc := newReceiver(t, nil)
	nodes, pub := startNodes(t, time.Minute, "n1", "n2") // no node is slow for a minute
	w := register(t, nodes["n2"].Service, rc)
	knownEverywhere(t, nodes, w.ID)
	var cs []presence.Change
	for i := 1; i <= 300; i++ {
		cs = append(cs, change(i))
	}
	pub(cs...)
	eventually(t, "the changes delivered", func() bool {
		return stats(t, nodes["n1"].Service, w.ID).Delivered+stats(t, nodes["n2"].Service, w.ID).Delivered == 300
	})
	checkDelivered(t, rc, seq(1, 300))
	senders := map[string]bool{}
	for _, a := range rc.all() {
		senders[a.node] = true
	}
	if len(senders) != 1 {
		t.Errorf("deliveries came from %v, want one node", senders)
	}
	st, err := nodes["n1"].Status(t.Context(), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range st.Nodes {
		names = append(names, n.Node)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"n1", "n2"}) || st.Delivered != 300 || st.Webhook != w.ID || st.Queued != 0 {
		t.Fatalf("status %+v, want both nodes, 300 delivered, none queued", st)
	}
}

// TestPrivateTargetsRefused: without AllowPrivate a loopback target is
// refused at registration, and a stored one (registered where it was
// allowed, or a name that now resolves elsewhere) at connection.
func TestPrivateTargetsRefused(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	s := newService(t, srv, webhook.Config{BatchSize: 1}, true)
	a := newAPI(t, s)
	if r := a.do("POST", "/v1/webhooks", `{"url":"`+rc.URL()+`"}`); r.status != http.StatusBadRequest || r.errorCode() != "bad_request" {
		t.Fatalf("register a loopback target: %d %s", r.status, r.raw)
	}
	if r := a.do("POST", "/v1/webhooks", `{"url":"http://[::ffff:169.254.169.254]/latest"}`); r.status != http.StatusBadRequest {
		t.Fatalf("register a link-local target: %d %s", r.status, r.raw)
	}

	lax := openStore(t, srv, webhook.StoreConfig{AllowPrivate: true})
	w, err := lax.Create(t.Context(), webhook.Webhook{URL: rc.URL()})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, natstest.Connect(t, srv), change(1))
	eventually(t, "a refused attempt", func() bool {
		st, ok := s.EndpointStats(w.ID)
		return ok && st.FailedAttempts >= 1
	})
	if st := stats(t, s, w.ID); !strings.Contains(st.LastError, "not allowed") || !strings.Contains(st.LastError, "loopback") {
		t.Fatalf("last error %q, want the loopback address refused", st.LastError)
	}
	if n := len(rc.all()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
}

// TestOrphanConsumerDeletedAtStart deletes a webhook while no node runs:
// the next node to start deletes its consumer.
func TestOrphanConsumerDeletedAtStart(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	s1, nc1 := newServiceConn(t, srv, failoverConfig("n1"))
	w := register(t, s1, rc)
	js := jsOf(t, natstest.Connect(t, srv))
	eventually(t, "the consumer", func() bool { return hasConsumer(t, js, w.ID) })
	kill(t, s1, nc1)
	if err := openStore(t, srv, webhook.StoreConfig{}).Delete(t.Context(), w.ID); err != nil {
		t.Fatal(err)
	}
	if !hasConsumer(t, js, w.ID) {
		t.Fatal("the consumer went with no node running")
	}
	newService(t, srv, failoverConfig("n2"))
	if hasConsumer(t, js, w.ID) {
		t.Fatal("the consumer of the deleted webhook outlived the next start")
	}
}

// TestLeftBehindConsumerDeletedWhileRunning: the consumer of a deleted
// webhook is deleted by the worker that learns of the deletion, with one
// request. When that request fails (the change stream was electing a
// leader for longer than it waits), the consumer stays: a running node
// deletes such consumers every OrphanSweep, not only when it starts.
func TestLeftBehindConsumerDeletedWhileRunning(t *testing.T) {
	srv := natstest.Start(t)
	cfg := failoverConfig("n1")
	cfg.OrphanSweep = 100 * time.Millisecond
	newService(t, srv, cfg)
	js := jsOf(t, natstest.Connect(t, srv))
	// A consumer as a deleted webhook's worker leaves it behind.
	const id = "wh_00112233445566778899"
	if _, err := js.CreateConsumer(t.Context(), webhook.DefaultStream, jetstream.ConsumerConfig{
		Durable: id, AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the left-behind consumer to be deleted", func() bool { return !hasConsumer(t, js, id) })
}
