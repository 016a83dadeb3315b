package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server keeps a process-wide helper alive.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
	)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fakeEngine counts what the test sets: users online and group counts.
type fakeEngine struct {
	mu sync.Mutex
	// mu guards the following fields.
	online map[string]bool
	groups map[string]int
	down   error
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{online: map[string]bool{}, groups: map[string]int{}}
}

func (e *fakeEngine) set(online []string, groups map[string]int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.online = map[string]bool{}
	for _, u := range online {
		e.online[u] = true
	}
	e.groups = groups
}

func (e *fakeEngine) Available() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down
}

func (e *fakeEngine) Counts() []presence.GroupCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []presence.GroupCount
	for g, n := range e.groups {
		out = append(out, presence.GroupCount{Group: g, Online: n, Total: n + 1})
	}
	return out
}

func (e *fakeEngine) Statuses(users []string) []presence.UserStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]presence.UserStatus, len(users))
	for i, u := range users {
		out[i] = presence.UserStatus{User: u, Status: protocol.StatusOffline}
		if e.online[u] {
			out[i].Status = protocol.StatusBusy
		}
	}
	return out
}

// fakeUsers lists n users u0000, u0001, ...: more than one page.
type fakeUsers int

func (n fakeUsers) ListUsers(after string, limit int) []membership.User {
	var out []membership.User
	for i := range int(n) {
		id := fmt.Sprintf("u%04d", i)
		if id > after && len(out) < limit {
			out = append(out, membership.User{ID: id})
		}
	}
	return out
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	// mu guards the following field.
	t time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// node is one Service with its own NATS connection, as a broker node has.
type node struct {
	*Service
	engine *fakeEngine
}

// start starts a Service on srv. With manual, its sampler is stopped at
// once: the test takes the samples with sampleAt.
func start(t *testing.T, srv *server.Server, name string, manual bool, mod ...func(*Config)) *node {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	e := newFakeEngine()
	cfg := Config{JetStream: js, Engine: e, Users: fakeUsers(1500), Node: name, Logger: zaptest.NewLogger(t).Named(name)}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if manual {
		s.stop()
		<-s.done
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &node{s, e}
}

// onClock makes a node's clock c, on a period of one minute.
func onClock(c *clock, replicas int) func(*Config) {
	return func(cfg *Config) {
		cfg.Now = c.Now
		cfg.Period = time.Minute
		cfg.Replicas = replicas
	}
}

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%04d", i*3) // spread over the pages
	}
	return out
}

// waitSamples waits until sr holds n samples.
func waitSamples(t *testing.T, sr *series, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		sr.mu.RLock()
		got := len(sr.samples)
		sr.mu.RUnlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d samples after 20s, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// storedNodes reads every sample of bucket: its writer, by key; and the
// number of messages the bucket's stream took.
func storedNodes(t *testing.T, s *Service, kv jetstream.KeyValue) (map[string]string, uint64) {
	t.Helper()
	keys, err := kv.Keys(ctxT(t))
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		e, err := kv.Get(ctxT(t), k)
		if err != nil {
			t.Fatal(err)
		}
		var r record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			t.Fatal(err)
		}
		out[k] = r.Node
	}
	st, err := s.cfg.JetStream.Stream(ctxT(t), "KV_"+kv.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return out, info.State.Msgs
}

// TestOneSamplePerPeriod has two nodes sample every period at the same
// moment, on one server and on a three-server cluster with replicated
// buckets, each node counting differently: every period holds exactly
// one sample, by one node, the same on both nodes and on a node started
// afterwards.
func TestOneSamplePerPeriod(t *testing.T) {
	for _, tc := range []struct {
		name     string
		servers  int
		replicas int
	}{{"one server", 1, 1}, {"cluster R3", 3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			var srvs []*server.Server
			if tc.servers == 1 {
				srvs = []*server.Server{natstest.Start(t)}
			} else {
				srvs = natstest.StartCluster(t, tc.servers)
			}
			day := time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)
			c := &clock{t: day.Add(10 * time.Hour)}
			a := start(t, srvs[0], "a", true, onClock(c, tc.replicas))
			b := start(t, srvs[len(srvs)-1], "b", true, onClock(c, tc.replicas))
			a.engine.set(users(3), map[string]int{"team": 2, "ops": 1})
			b.engine.set(users(4), map[string]int{"team": 3})

			const periods = 24 // four coarse periods
			step := a.cfg.Period.Milliseconds()
			first := c.Now().UnixMilli()
			for i := range periods {
				at := first + int64(i)*step
				c.set(time.UnixMilli(at))
				var ready, wg sync.WaitGroup
				ready.Add(2)
				for _, n := range []*node{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ready.Done()
						ready.Wait() // both at once
						n.sampleAt(ctxT(t), at)
					}()
				}
				wg.Wait()
			}
			sa, sb := a.Stats(), b.Stats()
			t.Logf("a %+v, b %+v", sa, sb)
			coarse := int64(periods) * step / a.cfg.Coarse.Milliseconds()
			if got := sa.Written + sb.Written; got != uint64(periods)+uint64(coarse) {
				t.Errorf("%d samples written, want %d fine and %d coarse", got, periods, coarse)
			}
			if sa.Lost+sb.Lost == 0 {
				t.Error("no node ever lost a race: the nodes did not sample at once")
			}
			if sa.Failed+sb.Failed+sa.Skipped+sb.Skipped != 0 {
				t.Errorf("failed or skipped samples: a %+v, b %+v", sa, sb)
			}
			for _, kv := range []jetstream.KeyValue{a.kvFine, a.kvCoarse} {
				writers, msgs := storedNodes(t, a.Service, kv)
				want := periods
				if kv == a.kvCoarse {
					want = int(coarse)
				}
				if len(writers) != want || msgs != uint64(want) {
					t.Errorf("%s: %d keys in %d messages, want %d of each", kv.Bucket(), len(writers), msgs, want)
				}
				for k, w := range writers {
					if w != "a" && w != "b" {
						t.Errorf("%s %s written by %q", kv.Bucket(), k, w)
					}
				}
			}

			// Both nodes, and one started now, show the same history.
			for _, n := range []*node{a, b} {
				waitSamples(t, &n.fine, periods)
				waitSamples(t, &n.coarse, int(coarse))
			}
			later := start(t, srvs[0], "later", true, onClock(c, tc.replicas))
			for _, q := range []struct {
				group string
				step  time.Duration
			}{{"", 0}, {"team", 0}, {"ops", 0}, {"", a.cfg.Coarse}, {"team", a.cfg.Coarse}} {
				want := mustQuery(t, a.Service, q.group, q.step)
				if len(want.Points) == 0 {
					t.Fatalf("%+v: no samples", q)
				}
				for _, n := range []*Service{b.Service, later.Service} {
					if got := mustQuery(t, n, q.group, q.step); !sameSeries(got, want) {
						t.Errorf("%+v on %s: %+v\nwant %+v", q, n.cfg.Node, got, want)
					}
				}
			}
		})
	}
}

func mustQuery(t *testing.T, s *Service, group string, step time.Duration) Series {
	t.Helper()
	got, err := s.Query(group, time.Time{}, step)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameSeries(a, b Series) bool {
	return a.Group == b.Group && a.Step == b.Step && a.Peak == b.Peak && slices.Equal(a.Points, b.Points)
}

// TestQuery checks the values of a series: the server's and a group's,
// a gap, a partial sample, the coarse maximum and the day's peak.
func TestQuery(t *testing.T) {
	srv := natstest.Start(t)
	day := time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)
	c := &clock{t: day.Add(-2 * time.Minute)}
	n := start(t, srv, "a", true, onClock(c, 1), func(cfg *Config) {
		cfg.Period = 10 * time.Second
		cfg.MaxGroups = 2
	})
	sample := func(at time.Time, online int, groups map[string]int) {
		t.Helper()
		c.set(at)
		n.engine.set(users(online), groups)
		n.sampleAt(ctxT(t), at.UnixMilli())
	}
	// Yesterday's peak: not today's.
	sample(day.Add(-time.Minute), 9, map[string]int{"team": 9})
	// Today, 10:00:00 to 10:01:00, with a gap at 10:00:20 and a sample
	// that leaves the smallest group out at 10:00:40.
	ten := day.Add(10 * time.Hour)
	sample(ten, 1, map[string]int{"team": 1})
	sample(ten.Add(10*time.Second), 4, map[string]int{"team": 2, "ops": 2})
	sample(ten.Add(30*time.Second), 5, map[string]int{"team": 3, "ops": 1})
	sample(ten.Add(40*time.Second), 2, map[string]int{"team": 3, "ops": 2, "small": 1})
	sample(ten.Add(50*time.Second), 5, map[string]int{"ops": 1})
	sample(ten.Add(time.Minute), 0, nil)
	c.set(ten.Add(time.Minute + 5*time.Second))

	at := func(d time.Duration) time.Time { return ten.Add(d) }
	for _, tc := range []struct {
		group string
		step  time.Duration
		want  []Point
		peak  Point
	}{
		{"", 0, []Point{{at(0), 1}, {at(10 * time.Second), 4}, {at(30 * time.Second), 5}, {at(40 * time.Second), 2},
			{at(50 * time.Second), 5}, {at(time.Minute), 0}}, Point{at(30 * time.Second), 5}},
		{"team", 0, []Point{{at(0), 1}, {at(10 * time.Second), 2}, {at(30 * time.Second), 3}, {at(40 * time.Second), 3},
			{at(50 * time.Second), 0}, {at(time.Minute), 0}}, Point{at(30 * time.Second), 3}},
		// Left out of the partial sample at 10:00:40: no value there.
		{"small", 0, []Point{{at(0), 0}, {at(10 * time.Second), 0}, {at(30 * time.Second), 0},
			{at(50 * time.Second), 0}, {at(time.Minute), 0}}, Point{at(0), 0}},
		// The coarse samples hold the highest of their minute.
		{"", time.Minute, []Point{{day.Add(-time.Minute), 9}, {at(0), 1}, {at(time.Minute), 5}}, Point{at(30 * time.Second), 5}},
		{"ops", time.Minute, []Point{{day.Add(-time.Minute), 0}, {at(0), 0}, {at(time.Minute), 2}}, Point{at(10 * time.Second), 2}},
		// Never seen: none online, but no value where a sample is partial.
		{"nobody", time.Minute, []Point{{day.Add(-time.Minute), 0}, {at(0), 0}}, Point{at(0), 0}},
	} {
		got := mustQuery(t, n.Service, tc.group, tc.step)
		if !slices.Equal(got.Points, tc.want) || got.Peak != tc.peak || !got.Day.Equal(day) {
			t.Errorf("%q step %v:\n got %v peak %v day %v\nwant %v peak %v", tc.group, tc.step, got.Points, got.Peak, got.Day, tc.want, tc.peak)
		}
	}

	// from picks the step and cuts the samples.
	got, err := n.Query("", at(30*time.Second), 0)
	if err != nil || got.Step != 10*time.Second || len(got.Points) != 4 {
		t.Errorf("from 10:00:30: step %v, %d points, %v", got.Step, len(got.Points), err)
	}
	got, err = n.Query("", at(-2*time.Hour), 0)
	if err != nil || got.Step != time.Minute || !got.From.Equal(at(-2*time.Hour)) {
		t.Errorf("from two hours ago: step %v from %v, %v", got.Step, got.From, err)
	}
	if _, err := n.Query("", time.Time{}, 30*time.Second); !errors.Is(err, ErrInvalid) {
		t.Errorf("step 30s: %v, want ErrInvalid", err)
	}
}

// TestCutOffNodeDoesNotSample: a node the engine says is cut off from the
// store writes nothing.
func TestCutOffNodeDoesNotSample(t *testing.T) {
	c := &clock{t: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
	n := start(t, natstest.Start(t), "a", true, onClock(c, 1))
	n.engine.mu.Lock()
	n.engine.down = errors.New("cut off")
	n.engine.mu.Unlock()
	n.sampleAt(ctxT(t), c.Now().UnixMilli())
	if st := n.Stats(); st.Skipped != 1 || st.Written != 0 {
		t.Fatalf("stats %+v, want one period skipped", st)
	}
	if writers, _ := storedNodes(t, n.Service, n.kvFine); len(writers) != 0 {
		t.Fatalf("samples written: %v", writers)
	}
}

// TestSampler runs the sampler of two nodes on a short period: samples
// land, one per period, and Shutdown leaves no goroutine behind.
func TestSampler(t *testing.T) {
	srv := natstest.Start(t)
	short := func(cfg *Config) { cfg.Period = 50 * time.Millisecond }
	a := start(t, srv, "a", false, short)
	b := start(t, srv, "b", false, short)
	for _, n := range []*node{a, b} {
		n.engine.set(users(2), map[string]int{"team": 2})
	}
	waitSamples(t, &a.fine, 4)
	waitSamples(t, &b.fine, 4)
	for _, n := range []*node{a, b} {
		if err := n.Shutdown(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	fine, fineMsgs := storedNodes(t, a.Service, a.kvFine)
	coarse, coarseMsgs := storedNodes(t, a.Service, a.kvCoarse)
	keys, msgs := uint64(len(fine)+len(coarse)), fineMsgs+coarseMsgs
	sa, sb := a.Stats(), b.Stats()
	// A write given up by Shutdown may still have landed.
	if w := sa.Written + sb.Written; msgs != keys || w > msgs || w+2 < msgs {
		t.Fatalf("%d keys in %d messages; a %+v, b %+v", keys, msgs, sa, sb)
	}
	if _, err := a.Query("", time.Time{}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("query after shutdown: %v", err)
	}
}

func TestConfig(t *testing.T) {
	ok := Config{JetStream: fakeJS{}, Engine: newFakeEngine(), Users: fakeUsers(0)}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Engine = nil }, "required"},
		{func(c *Config) { c.Period = 1500 * time.Microsecond }, "whole milliseconds"},
		{func(c *Config) { c.Period, c.Coarse = time.Second, 1500*time.Millisecond }, "multiple"},
		{func(c *Config) { c.KeepFine = time.Second }, "keep"},
	} {
		cfg := ok
		tc.mod(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// fakeJS is a JetStream that New accepts; nothing calls it.
type fakeJS struct{ jetstream.JetStream }
