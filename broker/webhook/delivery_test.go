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

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/presence"
)

func TestDeliverySignedBatches(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	clk := newFakeClock()
	rc.tolerance = 100 * 365 * 24 * time.Hour // the fake clock is far from the real one
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
	eventually(t, "the seventh change taken", func() bool { return stats(t, s, w.ID).Queued == 1 })
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
	// Stream sequences number the changes from 1: the ids are their ranges.
	for i, want := range []string{"1-3", "4-6", "7-7"} {
		a := got[i]
		if !a.valid {
			t.Errorf("batch %s: signature %q does not verify", want, a.header.Get(webhook.HeaderSignature))
		}
		ts := a.header.Get(webhook.HeaderTimestamp)
		if webhook.Verify(w.Secret+"x", a.raw, ts, a.header.Get(webhook.HeaderSignature), 0) {
			t.Errorf("batch %s verifies with another secret", want)
		}
		if a.body.Batch != want || a.header.Get(webhook.HeaderBatch) != want {
			t.Errorf("attempt %d: batch %q, header %q; want %s", i, a.body.Batch, a.header.Get(webhook.HeaderBatch), want)
		}
		if a.body.Webhook != w.ID || a.header.Get(webhook.HeaderWebhook) != w.ID {
			t.Errorf("batch %s: webhook %q, header %q; want %s", want, a.body.Webhook, a.header.Get(webhook.HeaderWebhook), w.ID)
		}
		if a.node != "node-a" || strings.Contains(string(a.raw), "node-a") {
			t.Errorf("batch %s: node header %q; the body must not name the node: %s", want, a.node, a.raw)
		}
		if n, err := strconv.ParseInt(ts, 10, 64); err != nil || n < start.Unix() || n > clk.Now().Unix() {
			t.Errorf("batch %s: timestamp %q, want Unix seconds of the fake clock", want, ts)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("batch %s: Content-Type %q", want, ct)
		}
	}
	if g := rc.acceptedChanges(); !slices.Equal(g, cs) {
		t.Errorf("changes delivered %+v, want %+v", g, cs)
	}
	eventually(t, "the last delivery counted", func() bool { return stats(t, s, w.ID).Delivered == 7 })
	st := stats(t, s, w.ID)
	if st.Delivered != 7 || st.Batches != 3 || st.FailedAttempts != 0 || st.Dropped != 0 || st.Queued != 0 || !st.Delivering {
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
	js := jsOf(t, pub)

	var cs []presence.Change
	for i := 1; i <= 60; i++ {
		cs = append(cs, change(i))
	}
	publish(t, pub, cs[:20]...)
	eventually(t, "the first attempt", func() bool { return len(rc.all()) == 1 })
	publish(t, pub, cs[20:]...)
	eventually(t, "every change in the stream", func() bool { return streamInfo(t, js).Msgs == 60 })
	close(proceed)
	eventually(t, "every change delivered", func() bool { return stats(t, s, w.ID).Delivered == 60 })

	all := rc.all()
	acc := rc.accepted()
	if len(all) != len(acc)+failures {
		t.Fatalf("%d attempts, %d accepted; want exactly %d failures", len(all), len(acc), failures)
	}
	for i, a := range all[:failures] {
		if a.body.Batch != acc[0].body.Batch || string(a.raw) != string(acc[0].raw) {
			t.Errorf("failed attempt %d sent batch %s; want batch %s resent with the same body", i, a.body.Batch, acc[0].body.Batch)
		}
	}
	checkDelivered(t, rc, seq(1, 60))
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
		"presenced_webhook_delivering":            1,
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

// TestAgedOutChangesAreCounted bounds the stream to 10 changes while an
// endpoint holds a batch: the changes that leave the stream before their
// turn are lost, and counted.
func TestAgedOutChangesAreCounted(t *testing.T) {
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
	js := jsOf(t, pub)

	publish(t, pub, change(1))
	eventually(t, "the first batch in flight", func() bool { return len(rc.all()) == 1 })
	var cs []presence.Change
	for i := 2; i <= 31; i++ {
		cs = append(cs, change(i))
	}
	publish(t, pub, cs...)
	eventually(t, "the stream at its bound", func() bool { st := streamInfo(t, js); return st.LastSeq == 31 && st.Msgs == 10 })
	close(release)
	eventually(t, "the rest delivered", func() bool { return stats(t, s, w.ID).Delivered == 11 })
	want := append([]uint64{1}, seq(22, 31)...)
	checkDelivered(t, rc, want)
	if st := stats(t, s, w.ID); st.Dropped != 20 {
		t.Errorf("dropped %d, want the 20 changes that aged out", st.Dropped)
	}
	if got := gather(t, s)["presenced_webhook_dropped_total{"+w.ID+"}"]; got != 20 {
		t.Errorf("presenced_webhook_dropped_total = %v, want 20", got)
	}
}

func TestSlowEndpointDoesNotHoldUpOthers(t *testing.T) {
	srv := natstest.Start(t)
	hanging := newReceiver(t, func(n int, r *http.Request) int {
		select {
		case <-r.Context().Done():
		case <-t.Context().Done():
		}
		return http.StatusNoContent
	})
	healthy := newReceiver(t, nil)
	s := newService(t, srv, webhook.Config{BatchSize: 10, BatchWait: time.Millisecond, Timeout: time.Minute, FailoverAfter: time.Second})
	wh := register(t, s, hanging)
	wf := register(t, s, healthy)
	pub := natstest.Connect(t, srv)
	js := jsOf(t, pub)

	for round := range 40 {
		var cs []presence.Change
		for i := 1; i <= 25; i++ {
			cs = append(cs, change(round*25+i))
		}
		publish(t, pub, cs...)
		eventually(t, "the healthy endpoint to keep up", func() bool { return stats(t, s, wf.ID).Delivered == uint64(round+1)*25 })
	}
	checkDelivered(t, healthy, seq(1, 1000))
	eventually(t, "the hanging endpoint's backlog counted", func() bool { return stats(t, s, wh.ID).Queued == 1000 })
	st := stats(t, s, wh.ID)
	if st.Delivered != 0 || st.InFlight == 0 || len(hanging.all()) != 1 {
		t.Fatalf("hanging endpoint: %+v after %d attempts; want its first POST pending, the rest queued", st, len(hanging.all()))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an endpoint hanging: %v, want it to give up", err)
	}
	if st := streamInfo(t, js); st.Msgs != 1000 {
		t.Fatalf("the stream holds %d changes after Shutdown, want all 1000 kept", st.Msgs)
	}
}

func TestUsersFilterDisableAndDelete(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	s := newService(t, srv, webhook.Config{BatchSize: 1})
	w := register(t, s, rc, "alice")
	pub := natstest.Connect(t, srv)
	js := jsOf(t, pub)
	ctx := t.Context()

	publish(t, pub, change(1, "alice"), change(2, "bob"), change(3, "alice"))
	eventually(t, "alice's changes", func() bool { return len(rc.accepted()) == 2 })

	setDisabled := func(v bool) {
		t.Helper()
		if _, err := s.Store().Update(ctx, w.ID, func(h *webhook.Webhook) error { h.Disabled = v; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	setDisabled(true)
	publish(t, pub, change(4, "alice"))
	eventually(t, "the change made while disabled in the stream", func() bool { return streamInfo(t, js).Msgs == 4 })
	setDisabled(false)
	publish(t, pub, change(5, "alice"))
	eventually(t, "delivery after enabling", func() bool { return stats(t, s, w.ID).Delivered == 3 })
	if g := revs(rc.acceptedChanges()); !slices.Equal(g, []uint64{1, 3, 5}) {
		t.Fatalf("delivered %v, want alice's changes while enabled: [1 3 5]", g)
	}

	// A new users filter applies to the changes after it.
	if _, err := s.Store().Update(ctx, w.ID, func(h *webhook.Webhook) error { h.Users = []string{"bob"}; return nil }); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, change(6, "alice"), change(7, "bob"))
	eventually(t, "bob's change", func() bool { return stats(t, s, w.ID).Delivered == 4 })
	if g := revs(rc.acceptedChanges()); !slices.Equal(g, []uint64{1, 3, 5, 7}) {
		t.Fatalf("delivered %v after the filter changed to bob, want [1 3 5 7]", g)
	}

	if err := s.Store().Delete(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.EndpointStats(w.ID); ok {
		t.Fatal("webhook still running after delete")
	}
	if st := s.Stats(); st.Delivered != 4 || st.Webhooks != 0 {
		t.Fatalf("totals %+v, want the deleted webhook's 4 deliveries kept", st)
	}
	eventually(t, "the consumer deleted", func() bool { return !hasConsumer(t, js, w.ID) })
}

// TestOnlyNewChanges registers a webhook on a stream that holds changes
// already: it gets the changes from its creation on.
func TestOnlyNewChanges(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	s := newService(t, srv, webhook.Config{BatchSize: 1})
	pub := natstest.Connect(t, srv)
	js := jsOf(t, pub)
	publish(t, pub, change(1), change(2))
	eventually(t, "the old changes in the stream", func() bool { return streamInfo(t, js).Msgs == 2 })
	w := register(t, s, rc)
	publish(t, pub, change(3))
	eventually(t, "the new change", func() bool { return stats(t, s, w.ID).Delivered == 1 })
	checkDelivered(t, rc, []uint64{3})
	if st := stats(t, s, w.ID); st.Dropped != 0 {
		t.Errorf("dropped %d: the changes before the creation are not the webhook's", st.Dropped)
	}
}

// hasConsumer reports whether the change stream has the consumer id.
func hasConsumer(t *testing.T, js jetstream.JetStream, id string) bool {
	t.Helper()
	_, err := js.Consumer(t.Context(), webhook.DefaultStream, id)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatal(err)
	}
	return err == nil
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
