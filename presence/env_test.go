package presence

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// env is one NATS server with a membership bucket and a fake clock shared
// by the engines of a test.
type env struct {
	t     testing.TB
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	mkv   jetstream.KeyValue
	clock *fakeClock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The membership bucket as the membership package lays it out.
	mkv, err := js.CreateOrUpdateKeyValue(ctxT(t), jetstream.KeyValueConfig{
		Bucket: membership.DefaultBucket, Storage: jetstream.FileStorage, History: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, nc: nc, js: js, mkv: mkv, clock: newFakeClock()}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// config is an engine config on its own connection, as another process
// would have.
func (v *env) config(node string) Config { return v.configOn(node, natstest.Connect(v.t, v.srv)) }

// configOn is an engine config on the connection nc.
func (v *env) configOn(node string, nc *nats.Conn) Config {
	js, err := jetstream.New(nc)
	if err != nil {
		v.t.Fatal(err)
	}
	return Config{
		JetStream: js, Conn: nc, NodeID: node, Storage: jetstream.MemoryStorage,
		Coalesce: -1, Clock: v.clock, Logger: zaptest.NewLogger(v.t).Named(node),
	}
}

func (v *env) start(cfg Config) *Engine {
	v.t.Helper()
	e, err := New(cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(e.Kill)
	if err := e.Start(ctxT(v.t)); err != nil {
		v.t.Fatal(err)
	}
	return e
}

func (v *env) engine(node string) *Engine { return v.start(v.config(node)) }

// link is a node's connection to the server that a test drops and keeps
// down for a while, as a network blip does: the client redials through
// it, and its dials wait while the link is down.
type link struct {
	v  *env
	nc *nats.Conn

	mu sync.Mutex
	// mu guards the following field.
	up chan struct{} // closed while the link is up
}

// linked is config(node) on a connection through a link.
func (v *env) linked(node string) (Config, *link) {
	v.t.Helper()
	l := &link{v: v, up: make(chan struct{})}
	close(l.up)
	// A dial waiting for the link must not outlive the test.
	v.t.Cleanup(l.restore)
	nc, err := nats.Connect(v.srv.ClientURL(), nats.Name("natstest"), nats.SetCustomDialer(l),
		nats.MaxReconnects(-1), nats.ReconnectWait(10*time.Millisecond))
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(nc.Close)
	l.nc = nc
	return v.configOn(node, nc), l
}

// Dial is the client's dial: it waits while the link is down.
func (l *link) Dial(network, address string) (net.Conn, error) {
	l.mu.Lock()
	up := l.up
	l.mu.Unlock()
	<-up
	return net.Dial(network, address)
}

// drop closes the connection on the server's side (its subscriptions,
// a watch's among them, lose interest at once) and keeps it down until
// restore.
func (l *link) drop() {
	l.v.t.Helper()
	l.mu.Lock()
	l.up = make(chan struct{})
	l.mu.Unlock()
	id, err := l.nc.GetClientID()
	if err != nil {
		l.v.t.Fatal(err)
	}
	if err := l.v.srv.DisconnectClientByID(id); err != nil {
		l.v.t.Fatal(err)
	}
}

// restore lets the client connect again.
func (l *link) restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.up:
	default:
		close(l.up)
	}
}

func (v *env) addMember(g, u string) uint64 {
	v.t.Helper()
	b, _ := json.Marshal(membership.Member{GroupID: g, UserID: u, Role: membership.RoleMember})
	rev, err := v.mkv.Put(ctxT(v.t), membership.MemberKey(g, u), b)
	if err != nil {
		v.t.Fatal(err)
	}
	return rev
}

func (v *env) removeMember(g, u string) {
	v.t.Helper()
	if err := v.mkv.Delete(ctxT(v.t), membership.MemberKey(g, u)); err != nil {
		v.t.Fatal(err)
	}
}

// lastRev is the presence stream's last revision.
func (v *env) lastRev() uint64 {
	v.t.Helper()
	st, err := v.js.Stream(ctxT(v.t), streamName(DefaultBucket))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0 // lost: nothing to wait for
	}
	if err != nil {
		v.t.Fatal(err)
	}
	info, err := st.Info(ctxT(v.t))
	if err != nil {
		v.t.Fatal(err)
	}
	return info.State.LastSeq
}

// sync waits until every engine applied everything stored so far.
func (v *env) sync(es ...*Engine) {
	v.t.Helper()
	rev := v.lastRev()
	for _, e := range es {
		if err := e.WaitRev(ctxT(v.t), rev); err != nil {
			v.t.Fatalf("%s: wait for rev %d: %v", e.NodeID(), rev, err)
		}
	}
}

// waitUntil waits, applied entry by applied entry, until cond holds. It
// looks again every few milliseconds as well: after the stream is lost and
// loaded again, revisions start over below the one it waits for.
func waitUntil(t *testing.T, e *Engine, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		w := e.x.waitFor(e.Rev() + 1)
		if cond() {
			e.x.stopWaiting(w)
			return
		}
		select {
		case <-w.ch:
		case <-tick.C:
			e.x.stopWaiting(w)
		case <-deadline.C:
			t.Fatalf("%s: timed out waiting for %s", e.NodeID(), what)
		}
	}
}

func waitStatus(t *testing.T, e *Engine, user string, want protocol.Status) {
	t.Helper()
	waitUntil(t, e, user+" "+string(want), func() bool { return e.Status(user).Status == want })
}

// feed collects the change feed.
type feed struct {
	ch  chan Change
	nc  *nats.Conn
	sub *nats.Subscription
}

func (v *env) feed() *feed {
	f := &feed{ch: make(chan Change, 1024), nc: v.nc}
	sub, err := v.nc.Subscribe(SubjectChanges+">", func(m *nats.Msg) {
		var c Change
		if err := json.Unmarshal(m.Data, &c); err == nil {
			f.ch <- c
		}
	})
	if err != nil {
		v.t.Fatal(err)
	}
	if err := v.nc.Flush(); err != nil {
		v.t.Fatal(err)
	}
	f.sub = sub
	v.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return f
}

// drain returns what arrived so far, after a round trip to the server.
func (f *feed) drain(t *testing.T) []Change {
	t.Helper()
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []Change
	for {
		select {
		case c := <-f.ch:
			out = append(out, c)
		default:
			return out
		}
	}
}

// groupDeltas returns the deltas a group's history holds.
func groupDeltas(e *Engine, g string) []Delta {
	e.x.mu.RLock()
	defer e.x.mu.RUnlock()
	gr := e.x.groups[g]
	if gr == nil {
		return nil
	}
	d, _ := gr.hist.after(gr.hist.floor)
	return d
}

// pass lets d of time go by on the shared clock in heartbeat-sized steps,
// as real time does: after each step every engine in es has finished the
// passes of its background loops that fell due, heard its own heartbeat
// (so liveness counts it) and applied what is stored. Engines killed
// meanwhile are skipped.
func (v *env) pass(d time.Duration, es ...*Engine) {
	v.t.Helper()
	step := DefaultLeaseRefresh / 4
	if len(es) > 0 {
		step = es[0].cfg.LeaseRefresh / 4
	}
	for left := d; left > 0; left -= step {
		before := make([]uint64, len(es))
		for i, e := range es {
			before[i] = e.ownBeats()
		}
		v.clock.Advance(min(step, left))
		deadline := time.Now().Add(10 * time.Second)
		for i, e := range es {
			for e.running() == nil && (e.ownBeats() == before[i] || e.loops.idle.Load() < e.loops.n.Load()) {
				if time.Now().After(deadline) {
					v.t.Fatalf("%s: still busy %v after the clock moved", e.NodeID(), 10*time.Second)
				}
				time.Sleep(time.Millisecond)
			}
		}
		var live []*Engine
		for _, e := range es {
			if e.running() == nil {
				live = append(live, e)
			}
		}
		v.sync(live...)
	}
}

func (e *Engine) ownBeats() uint64 {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	return e.live.own
}
