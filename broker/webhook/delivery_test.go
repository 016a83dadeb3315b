package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/presence"
)

func TestDeliverySignedBatches(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	clk := newFakeClock()
	start := clk.Now()
	s := newService(t, srv, webhook.Config{BatchSize: 3, BatchWait: time.Hour, Clock: clk, NodeID: "node-a"})
	w := register(t, s, rc)
	pub := natstest.Connect(t, srv)

	var cs []presence.Change
	for i := 1; i <= 7; i++ {
		cs = append(cs, change(i))
	}
	publish(t, pub, cs...)
	eventually(t, "two full batches", func() bool { return len(rc.accepted()) == 2 })
	eventually(t, "the seventh change queued", func() bool { return stats(t, s, w.ID).Queued == 1 })
	if n := len(rc.all()); n != 2 {
		t.Fatalf("%d POSTs before the batch window ended, want 2", n)
	}
	eventually(t, "the window to end", func() bool {
		clk.Advance(time.Hour)
		return len(rc.accepted()) == 3
	})

	got := rc.all()
	if len(got) != 3 {
		t.Fatalf("%d POSTs, want 3", len(got))
	}
	for i, a := range got {
		n := uint64(i + 1)
		if !a.valid {
			t.Errorf("batch %d: signature %q does not verify", n, a.header.Get(webhook.HeaderSignature))
		}
		if webhook.Verify(w.Secret+"x", a.raw, a.header.Get(webhook.HeaderSignature)) {
			t.Errorf("batch %d verifies with another secret", n)
		}
		if a.body.Batch != n || a.header.Get(webhook.HeaderBatch) != strconv.FormatUint(n, 10) {
			t.Errorf("attempt %d: batch %d, header %q; want %d", i, a.body.Batch, a.header.Get(webhook.HeaderBatch), n)
		}
		if a.body.Webhook != w.ID || a.header.Get(webhook.HeaderWebhook) != w.ID {
			t.Errorf("batch %d: webhook %q, header %q; want %s", n, a.body.Webhook, a.header.Get(webhook.HeaderWebhook), w.ID)
		}
		if a.body.Node != "node-a" || a.header.Get(webhook.HeaderNode) != "node-a" {
			t.Errorf("batch %d: node %q", n, a.body.Node)
		}
		if ts, err := strconv.ParseInt(a.header.Get(webhook.HeaderTimestamp), 10, 64); err != nil || ts < start.Unix() || ts > clk.Now().Unix() {
			t.Errorf("batch %d: timestamp %q, want Unix seconds of the fake clock", n, a.header.Get(webhook.HeaderTimestamp))
		}
		if ct := a.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("batch %d: Content-Type %q", n, ct)
		}
	}
	sizes := []int{len(got[0].body.Changes), len(got[1].body.Changes), len(got[2].body.Changes)}
	if !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("batch sizes %v, want [3 3 1]", sizes)
	}
	if g := rc.acceptedChanges(); !slices.Equal(g, cs) {
		t.Errorf("changes delivered %+v, want %+v", g, cs)
	}
	eventually(t, "the last delivery counted", func() bool { return stats(t, s, w.ID).Delivered == 7 })
	st := stats(t, s, w.ID)
	if st.Delivered != 7 || st.Batches != 3 || st.FailedAttempts != 0 || st.Dropped != 0 || st.Queued != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRetryKeepsOrderAndLosesNoBatch(t *testing.T) {
	const failures = 4
	srv := natstest.Start(t)
	proceed := make(chan struct{})
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			// Hold the first attempt until more changes have queued up
			// behind the failing batch.
			select {
			case <-proceed:
			case <-t.Context().Done():
			}
		}
		if n < failures {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s := newService(t, srv, webhook.Config{
		BatchSize: 5, BatchWait: time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
	})
	w := register(t, s, rc)
	pub := natstest.Connect(t, srv)

	var cs []presence.Change
	for i := 1; i <= 60; i++ {
		cs = append(cs, change(i))
	}
	publish(t, pub, cs[:20]...)
	eventually(t, "the first attempt", func() bool { return len(rc.all()) == 1 })
	publish(t, pub, cs[20:]...)
	eventually(t, "every change queued", func() bool { return s.Stats().Received == 60 })
	close(proceed)
	eventually(t, "every change delivered", func() bool { return stats(t, s, w.ID).Delivered == 60 })

	all := rc.all()
	acc := rc.accepted()
	if len(all) != len(acc)+failures {
		t.Fatalf("%d attempts, %d accepted; want exactly %d failures", len(all), len(acc), failures)
	}
	for i, a := range all[:failures] {
		if a.body.Batch != 1 || string(a.raw) != string(acc[0].raw) {
			t.Errorf("failed attempt %d sent batch %d; want batch 1 resent with the same body", i, a.body.Batch)
		}
	}
	for i, a := range acc {
		if a.body.Batch != uint64(i+1) || !a.valid {
			t.Errorf("accepted %d: batch %d (valid signature %v), want %d", i, a.body.Batch, a.valid, i+1)
		}
	}
	if g := revs(rc.acceptedChanges()); !slices.Equal(g, seq(1, 60)) {
		t.Fatalf("changes delivered %v, want 1..60 once each in order", g)
	}
	st := stats(t, s, w.ID)
	if st.FailedAttempts != failures || st.Dropped != 0 || st.Queued != 0 || st.Batches != uint64(len(acc)) {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(st.LastError, "500") || st.LastErrorAt.IsZero() {
		t.Errorf("last error %q at %v, want the 500", st.LastError, st.LastErrorAt)
	}
	m := gather(t, s)
	for name, want := range map[string]float64{
		"presenced_webhook_delivered_total":       60,
		"presenced_webhook_failed_attempts_total": failures,
		"presenced_webhook_dropped_total":         0,
		"presenced_webhook_queued":                0,
		"presenced_webhook_batches_total":         float64(len(acc)),
	} {
		if got, ok := m[name+"{"+w.ID+"}"]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
}

func TestBackoffOnTheClock(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		switch n {
		case 2:
			return http.StatusTooManyRequests // with Retry-After, below
		case 6:
			return http.StatusNoContent
		}
		return http.StatusBadGateway
	})
	rc.srv.Config.Handler = retryAfterOn(2, "3", rc.srv.Config.Handler)
	clk := newFakeClock()
	s := newService(t, srv, webhook.Config{
		BatchSize: 1, Clock: clk, Rand: func() float64 { return 0 },
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
	})
	w := register(t, s, rc)
	publish(t, natstest.Connect(t, srv), change(1))

	// Doubling from the minimum, Retry-After (3s) capped at the maximum.
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second}
	for i, d := range want {
		eventually(t, "a retry timer", func() bool { return len(clk.pending()) == 1 })
		if got := clk.pending()[0]; got != d {
			t.Fatalf("wait before retry %d = %v, want %v", i+1, got, d)
		}
		if n := len(rc.all()); n != i+1 {
			t.Fatalf("%d attempts before retry %d, want %d", n, i+1, i+1)
		}
		clk.Advance(d)
	}
	eventually(t, "the delivery", func() bool { return stats(t, s, w.ID).Delivered == 1 })
	if st := stats(t, s, w.ID); st.FailedAttempts != 6 || len(rc.accepted()) != 1 {
		t.Errorf("stats %+v", st)
	}
}

// retryAfterOn sets a Retry-After header on the n-th request.
func retryAfterOn(n int, v string, h http.Handler) http.Handler {
	count := make(chan int, 1)
	count <- 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := <-count
		count <- i + 1
		if i == n {
			w.Header().Set("Retry-After", v)
		}
		h.ServeHTTP(w, r)
	})
}

func TestOverflowDropsTheOldest(t *testing.T) {
	srv := natstest.Start(t)
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
	s := newService(t, srv, webhook.Config{BatchSize: 1, QueueLimit: 10})
	w := register(t, s, rc)
	pub := natstest.Connect(t, srv)

	publish(t, pub, change(1))
	eventually(t, "the first batch in flight", func() bool { return len(rc.all()) == 1 })
	var cs []presence.Change
	for i := 2; i <= 31; i++ {
		cs = append(cs, change(i))
	}
	publish(t, pub, cs...)
	eventually(t, "30 more changes taken", func() bool { return s.Stats().Received == 31 })
	st := stats(t, s, w.ID)
	if st.Dropped != 20 || st.Queued != 11 || st.InFlight != 1 {
		t.Fatalf("stats %+v; want 20 dropped, 10 queued behind 1 in flight", st)
	}
	if got := gather(t, s)["presenced_webhook_dropped_total{"+w.ID+"}"]; got != 20 {
		t.Errorf("presenced_webhook_dropped_total = %v, want 20", got)
	}
	close(release)
	eventually(t, "the rest delivered", func() bool { return stats(t, s, w.ID).Delivered == 11 })
	want := append([]uint64{1}, seq(22, 31)...)
	if g := revs(rc.acceptedChanges()); !slices.Equal(g, want) {
		t.Fatalf("delivered %v, want %v (the oldest queued changes dropped)", g, want)
	}
	for i, a := range rc.accepted() {
		if a.body.Batch != uint64(i+1) {
			t.Fatalf("batch %d numbered %d", i+1, a.body.Batch)
		}
	}
}

func TestSlowEndpointDoesNotHoldUpTheFeed(t *testing.T) {
	srv := natstest.Start(t)
	hanging := newReceiver(t, func(n int, r *http.Request) int {
		select {
		case <-r.Context().Done():
		case <-t.Context().Done():
		}
		return http.StatusNoContent
	})
	healthy := newReceiver(t, nil)
	s := newService(t, srv, webhook.Config{BatchSize: 10, BatchWait: time.Millisecond, QueueLimit: 50, Timeout: time.Minute})
	wh := register(t, s, hanging)
	wf := register(t, s, healthy)
	pub := natstest.Connect(t, srv)

	// In rounds smaller than the queue limit, so that the healthy endpoint,
	// which has its own queue, never overflows while the other one does.
	for round := range 40 {
		var cs []presence.Change
		for i := 1; i <= 25; i++ {
			cs = append(cs, change(round*25+i))
		}
		publish(t, pub, cs...)
		eventually(t, "the healthy endpoint to keep up", func() bool { return stats(t, s, wf.ID).Delivered == uint64(round+1)*25 })
	}
	if g := revs(healthy.acceptedChanges()); !slices.Equal(g, seq(1, 1000)) {
		t.Fatalf("healthy endpoint got %d changes out of order or twice", len(g))
	}
	eventually(t, "every change taken", func() bool { return s.Stats().Received == 1000 })
	st := stats(t, s, wh.ID)
	if st.Delivered != 0 || st.Queued+int(st.Dropped) != 1000 || st.Queued > 50+10 || len(hanging.all()) != 1 {
		t.Fatalf("hanging endpoint: %+v after %d attempts; want its first POST pending, the rest queued or dropped", st, len(hanging.all()))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an endpoint hanging: %v, want it to give up", err)
	}
	if st := stats(t, s, wh.ID); st.Dropped != 1000 || st.Queued != 0 {
		t.Fatalf("after Shutdown: %+v, want everything undelivered counted as dropped", st)
	}
}

func TestShutdownSendsWhatIsQueued(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	clk := newFakeClock()
	s := newService(t, srv, webhook.Config{BatchWait: time.Hour, Clock: clk})
	w := register(t, s, rc)
	var cs []presence.Change
	for i := 1; i <= 5; i++ {
		cs = append(cs, change(i))
	}
	publish(t, natstest.Connect(t, srv), cs...)
	eventually(t, "five changes queued", func() bool { return stats(t, s, w.ID).Queued == 5 })
	if n := len(rc.all()); n != 0 {
		t.Fatalf("%d POSTs before the window ended", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if g := rc.acceptedChanges(); !slices.Equal(g, cs) || len(rc.all()) != 1 {
		t.Fatalf("flushed %d POSTs with %v, want one batch of %v", len(rc.all()), revs(g), revs(cs))
	}
	publish(t, natstest.Connect(t, srv), change(6))
	if st := s.Stats(); st.Received != 5 {
		t.Fatalf("received %d changes after Shutdown", st.Received-5)
	}
}

func TestUsersFilterDisableAndDelete(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	s := newService(t, srv, webhook.Config{BatchSize: 1})
	w := register(t, s, rc, "alice")
	pub := natstest.Connect(t, srv)
	ctx := t.Context()

	publish(t, pub, change(1, "alice"), change(2, "bob"), change(3, "alice"))
	eventually(t, "alice's changes", func() bool { return len(rc.accepted()) == 2 })
	eventually(t, "bob's change taken", func() bool { return s.Stats().Received == 3 })

	setDisabled := func(v bool) {
		t.Helper()
		if _, err := s.Store().Update(ctx, w.ID, func(h *webhook.Webhook) error { h.Disabled = v; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	setDisabled(true)
	publish(t, pub, change(4, "alice"))
	eventually(t, "the change for the disabled webhook taken", func() bool { return s.Stats().Received == 4 })
	setDisabled(false)
	publish(t, pub, change(5, "alice"))
	eventually(t, "delivery after enabling", func() bool { return stats(t, s, w.ID).Delivered == 3 })
	if g := revs(rc.acceptedChanges()); !slices.Equal(g, []uint64{1, 3, 5}) {
		t.Fatalf("delivered %v, want alice's changes while enabled: [1 3 5]", g)
	}

	if err := s.Store().Delete(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.EndpointStats(w.ID); ok {
		t.Fatal("endpoint still running after delete")
	}
	if st := s.Stats(); st.Delivered != 3 || st.Webhooks != 0 {
		t.Fatalf("totals %+v, want the deleted webhook's 3 deliveries kept", st)
	}
}

func TestTwoServicesDeliverEachChangeOnce(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	cfg := webhook.Config{BatchSize: 20, BatchWait: 5 * time.Millisecond, StatusWait: 500 * time.Millisecond}
	cfg.NodeID = "n1"
	s1 := newService(t, srv, cfg)
	cfg.NodeID = "n2"
	s2 := newService(t, srv, cfg)
	w := register(t, s1, rc)
	eventually(t, "the other node to know the webhook", func() bool {
		_, ok := s2.EndpointStats(w.ID)
		return ok
	})

	var cs []presence.Change
	for i := 1; i <= 300; i++ {
		cs = append(cs, change(i))
	}
	publish(t, natstest.Connect(t, srv), cs...)
	eventually(t, "the changes delivered", func() bool {
		return stats(t, s1, w.ID).Delivered+stats(t, s2, w.ID).Delivered >= 300
	})
	if n := s1.Stats().Received + s2.Stats().Received; n != 300 {
		t.Fatalf("the nodes took %d changes, want each of 300 once", n)
	}
	if s1.Stats().Received == 0 || s2.Stats().Received == 0 {
		t.Fatalf("one node took every change: %d and %d", s1.Stats().Received, s2.Stats().Received)
	}
	got := revs(rc.acceptedChanges())
	slices.Sort(got)
	if !slices.Equal(got, seq(1, 300)) {
		t.Fatalf("delivered %d changes, want each of 300 exactly once", len(got))
	}
	// From each node, batches are numbered from 1 and keep the feed order.
	perNode := map[string][]attempt{}
	for _, a := range rc.accepted() {
		perNode[a.body.Node] = append(perNode[a.body.Node], a)
	}
	for node, as := range perNode {
		var last uint64
		for i, a := range as {
			if a.body.Batch != uint64(i+1) {
				t.Fatalf("node %s: batch %d numbered %d", node, i+1, a.body.Batch)
			}
			for _, c := range a.body.Changes {
				if c.Rev <= last {
					t.Fatalf("node %s: rev %d after %d", node, c.Rev, last)
				}
				last = c.Rev
			}
		}
	}

	st, err := s1.Status(t.Context(), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{}
	for _, n := range st.Nodes {
		nodes = append(nodes, n.Node)
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"n1", "n2"}) || st.Delivered != 300 || st.Webhook != w.ID {
		t.Fatalf("status %+v, want both nodes' shares summing to 300", st)
	}
}

// gather scrapes the service's collectors into name{webhook} → value.
func gather(t *testing.T, s *webhook.Service) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + "{" + m.GetLabel()[0].GetValue() + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
