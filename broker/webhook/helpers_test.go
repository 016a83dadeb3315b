package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// fakeClock is a presence.Clock that moves only when a test advances it.
type fakeClock struct {
	mu sync.Mutex
	// mu guards the following fields.
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	d  time.Duration
	f  func()
}

var _ presence.Clock = (*fakeClock)(nil)

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) presence.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), d: d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// Advance moves the clock and runs the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.at.After(c.now) {
			return false
		}
		due = append(due, t)
		return true
	})
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// pending returns the durations the pending timers were set for.
func (c *fakeClock) pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		ds = append(ds, t.d)
	}
	return ds
}

// eventually waits, up to a bound, for cond to hold: a wait for an event,
// never a timing assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// body is a delivery as a receiver decodes it.
type body struct {
	Webhook string            `json:"webhook"`
	Batch   string            `json:"batch"`
	Changes []presence.Change `json:"changes"`
}

// attempt is one POST a receiver got.
type attempt struct {
	header http.Header
	raw    []byte
	body   body
	node   string // X-Presenced-Node
	valid  bool   // the signature verified with the receiver's secret
	status int    // what the receiver answered
}

// receiver is a real HTTP endpoint on 127.0.0.1 that records every POST.
// answer decides the status of the n-th attempt (0-based); it may block.
type receiver struct {
	srv    *httptest.Server
	answer func(n int, r *http.Request) int
	// tolerance is the timestamp tolerance of the signature check
	// (default webhook.DefaultTolerance); set it before deliveries.
	tolerance time.Duration

	mu sync.Mutex
	// mu guards the following fields.
	secret   string
	attempts []attempt
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	if rc.answer == nil {
		rc.answer = func(int, *http.Request) int { return http.StatusNoContent }
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hook" }

func (rc *receiver) setSecret(s string) {
	rc.mu.Lock()
	rc.secret = s
	rc.mu.Unlock()
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.attempts)
	a := attempt{header: r.Header.Clone(), raw: raw, node: r.Header.Get(webhook.HeaderNode),
		valid: webhook.Verify(rc.secret, raw, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), rc.tolerance)}
	_ = json.Unmarshal(raw, &a.body)
	rc.attempts = append(rc.attempts, a)
	rc.mu.Unlock()
	status := rc.answer(n, r)
	rc.mu.Lock()
	rc.attempts[n].status = status
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func (rc *receiver) all() []attempt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.attempts)
}

// accepted returns the attempts answered 2xx.
func (rc *receiver) accepted() []attempt {
	return slices.DeleteFunc(rc.all(), func(a attempt) bool { return a.status < 200 || a.status > 299 })
}

// acceptedChanges returns the changes of the accepted attempts, in order.
func (rc *receiver) acceptedChanges() []presence.Change {
	var cs []presence.Change
	for _, a := range rc.accepted() {
		cs = append(cs, a.body.Changes...)
	}
	return cs
}

// publicResolver resolves every name to a public address, so that tests
// register names without a DNS.
type publicResolver struct{}

func (publicResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return []net.IPAddr{{IP: net.IPv4(93, 184, 215, 14)}}, nil
}

// newService starts a Service on its own connection to srv; it is shut
// down by t.Cleanup. Its receivers are local: private targets are allowed
// unless strictTargets is given.
func newService(t *testing.T, srv *server.Server, cfg webhook.Config, strictTargets ...bool) *webhook.Service {
	t.Helper()
	s, _ := newServiceConn(t, srv, cfg, strictTargets...)
	return s
}

// newServiceConn is newService that also returns the Service's connection.
func newServiceConn(t *testing.T, srv *server.Server, cfg webhook.Config, strictTargets ...bool) (*webhook.Service, *nats.Conn) {
	t.Helper()
	nc := natstest.Connect(t, srv)
	cfg.Conn = nc
	cfg.JetStream = jsOf(t, nc)
	cfg.AllowPrivate = len(strictTargets) == 0 || !strictTargets[0]
	if cfg.Resolver == nil {
		cfg.Resolver = publicResolver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, nc
}

// kill stops a Service as if its node died: its connection goes first,
// so that it acknowledges and unpins nothing, then its goroutines.
func kill(t *testing.T, s *webhook.Service, nc *nats.Conn) {
	t.Helper()
	nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
}

// streamInfo returns the state of the change stream.
func streamInfo(t *testing.T, js jetstream.JetStream) jetstream.StreamState {
	t.Helper()
	st, err := js.Stream(t.Context(), webhook.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// checkDelivered checks that the accepted batches carry want, in order,
// each once, with batch ids that are consecutive ranges of stream
// sequences; and that every attempt with an id sent the same body.
func checkDelivered(t *testing.T, rc *receiver, want []uint64) {
	t.Helper()
	if g := revs(rc.acceptedChanges()); !slices.Equal(g, want) {
		t.Fatalf("changes delivered %v, want %v once each in order", g, want)
	}
	bodies := map[string]string{}
	for _, a := range rc.all() {
		if prev, ok := bodies[a.body.Batch]; ok && prev != string(a.raw) {
			t.Fatalf("batch %s sent with two bodies:\n%s\n%s", a.body.Batch, prev, a.raw)
		}
		bodies[a.body.Batch] = string(a.raw)
		if a.header.Get(webhook.HeaderBatch) != a.body.Batch || !a.valid {
			t.Fatalf("attempt of batch %q: header %q, signature valid %v", a.body.Batch, a.header.Get(webhook.HeaderBatch), a.valid)
		}
	}
	var last uint64
	for _, a := range rc.accepted() {
		var first, end uint64
		if _, err := fmt.Sscanf(a.body.Batch, "%d-%d", &first, &end); err != nil || first > end || first <= last {
			t.Fatalf("accepted batch %q after stream sequence %d: want an increasing range, each once", a.body.Batch, last)
		}
		last = end
	}
}

// register creates a webhook for rc on s and gives rc its secret.
func register(t *testing.T, s *webhook.Service, rc *receiver, users ...string) webhook.Webhook {
	t.Helper()
	w, err := s.Store().Create(t.Context(), webhook.Webhook{URL: rc.URL(), Users: users})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	rc.setSecret(w.Secret)
	return w
}

// change is the i-th test change, of user u<i> unless user is given.
func change(i int, user ...string) presence.Change {
	c := presence.Change{User: fmt.Sprintf("u%d", i), Status: protocol.StatusOnline, Rev: uint64(i)}
	if len(user) > 0 {
		c.User = user[0]
	}
	return c
}

// publish sends changes on the feed as the presence engine does.
func publish(t *testing.T, nc *nats.Conn, cs ...presence.Change) {
	t.Helper()
	for _, c := range cs {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(presence.SubjectChanges+c.User, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func revs(cs []presence.Change) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Rev
	}
	return out
}

func seq(from, to int) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, uint64(i))
	}
	return out
}

func stats(t *testing.T, s *webhook.Service, id string) webhook.EndpointStats {
	t.Helper()
	st, ok := s.EndpointStats(id)
	if !ok {
		t.Fatalf("no endpoint %s", id)
	}
	return st
}
