package presence

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/protocol"
)

// stored is the presence bucket's content at one revision, read back
// from JetStream, and what every node's index must derive from it.
type stored struct {
	rev      uint64
	sessions map[string]storedSession // s. and b. keys
	leases   map[string]leaseRecord
	manuals  map[string]storedManual
	members  map[string]map[string]bool // group → users
}

type storedSession struct {
	kind    keyKind
	rec     sessionRecord
	rev     uint64
	created time.Time
}

type storedManual struct {
	rec     manualRecord
	created time.Time
}

// readStored loads every key of the presence bucket; ok is false if the
// stream moved on while reading.
func (v *env) readStored(t *testing.T) (stored, bool) {
	t.Helper()
	ctx := ctxT(t)
	before := v.lastRev()
	kv, err := v.js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	st := stored{rev: before, sessions: map[string]storedSession{}, leases: map[string]leaseRecord{},
		manuals: map[string]storedManual{}, members: map[string]map[string]bool{}}
	for e := range w.Updates() {
		if e == nil {
			break
		}
		kind, a, b := parseKey(e.Key())
		switch kind {
		case kindSession, kindSource:
			var r sessionRecord
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				t.Fatal(err)
			}
			st.sessions[e.Key()] = storedSession{kind: kind, rec: r, rev: e.Revision(), created: e.Created()}
		case kindLease:
			var l leaseRecord
			if err := json.Unmarshal(e.Value(), &l); err != nil {
				t.Fatal(err)
			}
			st.leases[a] = l
		case kindManual:
			var m manualRecord
			if err := json.Unmarshal(e.Value(), &m); err != nil {
				t.Fatal(err)
			}
			st.manuals[a] = storedManual{rec: m, created: e.Created()}
		case kindMember:
			if st.members[a] == nil {
				st.members[a] = map[string]bool{}
			}
			st.members[a][b] = true
		}
	}
	return st, v.lastRev() == before
}

// expect recomputes every user's status from the stored entries alone.
func (st stored) expect() map[string]MemberStatus {
	type acc struct {
		cs []contribution
	}
	accs := map[string]*acc{}
	get := func(u string) *acc {
		if accs[u] == nil {
			accs[u] = &acc{}
		}
		return accs[u]
	}
	for key, s := range st.sessions {
		_, user, _ := parseKey(key)
		counts := s.kind == kindSource || !s.rec.Expires.IsZero()
		if l, ok := st.leases[s.rec.Node]; ok && l.Inst == s.rec.Inst {
			counts = true
		}
		a := get(user)
		if counts {
			since := s.rec.Since
			if since.IsZero() {
				since = s.created
			}
			a.cs = append(a.cs, contribution{status: s.rec.Status, text: s.rec.Text, since: since, rev: s.rev})
		}
	}
	for u := range st.manuals {
		get(u)
	}
	out := map[string]MemberStatus{}
	for u, a := range accs {
		var m *manualStatus
		if sm, ok := st.manuals[u]; ok {
			since := sm.rec.Since
			if since.IsZero() {
				since = sm.created
			}
			m = &manualStatus{status: sm.rec.Status, text: sm.rec.Text, since: since}
		}
		status, text, since := aggregate(a.cs, m)
		out[u] = MemberStatus{User: u, Status: status, Text: text, Since: since}
	}
	return out
}

// checkAgainstStored compares an engine's index with the stored entries;
// it returns false if the engine is not at the stored revision.
func checkAgainstStored(t *testing.T, e *Engine, st stored, want map[string]MemberStatus) bool {
	t.Helper()
	x := e.x
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.rev != st.rev {
		return false
	}
	for id, u := range x.users {
		w, ok := want[id]
		if !ok {
			w = MemberStatus{User: id, Status: protocol.StatusOffline}
		}
		if u.status != w.Status || u.text != w.Text || !u.since.Equal(w.Since) {
			t.Errorf("%s at %d: user %s = %s %q %v, stored entries say %s %q %v",
				e.NodeID(), st.rev, id, u.status, u.text, u.since, w.Status, w.Text, w.Since)
		}
	}
	for id, w := range want {
		if x.users[id] == nil && w.Status != protocol.StatusOffline {
			t.Errorf("%s: user %s missing, stored entries say %s", e.NodeID(), id, w.Status)
		}
	}
	for gid, ms := range st.members {
		snap := x.snapshotLocked(gid, false)
		var members []MemberStatus
		for u := range ms {
			if w := want[u]; w.Status.Online() {
				members = append(members, w)
			}
		}
		slices.SortFunc(members, func(a, b MemberStatus) int { return strings.Compare(a.User, b.User) })
		if snap.Total != len(ms) || snap.Online != len(members) || !slices.EqualFunc(snap.Members, members, sameMember) {
			t.Errorf("%s: group %s = %d/%d %+v\nstored entries say %d/%d %+v",
				e.NodeID(), gid, snap.Online, snap.Total, snap.Members, len(members), len(ms), members)
		}
	}
	counted := 0
	for _, s := range x.sessions {
		if x.counted(s) {
			counted++
		}
	}
	if n := x.tally.counted(x.leases); n != counted {
		t.Errorf("%s: the tally counts %d sessions, %d count", e.NodeID(), n, counted)
	}
	for gid, g := range x.groups {
		if len(g.members) > 0 && st.members[gid] == nil {
			t.Errorf("%s: group %s has %d members, stored entries none", e.NodeID(), gid, len(g.members))
		}
	}
	return true
}

func sameMember(a, b MemberStatus) bool {
	return a.User == b.User && a.Status == b.Status && a.Text == b.Text && a.Since.Equal(b.Since)
}

// client is what a WebSocket client would hold: snapshots plus batches.
type client struct {
	sub    *Subscriber
	view   map[string]map[string]Delta
	counts map[string][2]int
	last   map[string]uint64
	prev   uint64
}

func newClient(t *testing.T, e *Engine, groups []string) *client {
	c := &client{sub: e.NewSubscriber(SubscriberConfig{Queue: 1 << 20}), view: map[string]map[string]Delta{},
		counts: map[string][2]int{}, last: map[string]uint64{}}
	t.Cleanup(c.sub.Close)
	for _, g := range groups {
		in, err := c.sub.Subscribe(g, SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snap := in.(Snapshot)
		c.view[g] = map[string]Delta{}
		for _, m := range snap.Members {
			c.view[g][m.User] = Delta{User: m.User, Status: m.Status, Text: m.Text, Since: m.Since}
		}
		c.counts[g] = [2]int{snap.Online, snap.Total}
		c.last[g] = snap.Rev
	}
	return c
}

// drain applies every queued batch, checking revision order.
func (c *client) drain(t *testing.T) {
	t.Helper()
	for _, b := range next(t, c.sub) {
		if b.Rev < c.prev {
			t.Fatalf("batch of %s at rev %d after a batch at %d", b.Group, b.Rev, c.prev)
		}
		c.prev = b.Rev
		// One event (a lease's end) can change several users at one
		// revision; batches of a group follow each other strictly.
		floor, prev := c.last[b.Group], c.last[b.Group]
		for _, d := range b.Changes {
			if d.Rev <= floor || d.Rev < prev || d.Rev > b.Rev {
				t.Fatalf("group %s: delta at rev %d after %d (batch at %d)", b.Group, d.Rev, prev, b.Rev)
			}
			prev = d.Rev
			c.last[b.Group] = d.Rev
			if d.Removed || !d.Status.Online() {
				delete(c.view[b.Group], d.User)
			} else {
				c.view[b.Group][d.User] = d
			}
		}
		c.counts[b.Group] = [2]int{b.Online, b.Total}
	}
}

// check compares the client's view with fresh snapshots.
func (c *client) check(t *testing.T, e *Engine) {
	t.Helper()
	for g, view := range c.view {
		snap := e.Snapshot(g)
		var got []MemberStatus
		for _, d := range view {
			got = append(got, MemberStatus{User: d.User, Status: d.Status, Text: d.Text, Since: d.Since})
		}
		slices.SortFunc(got, func(a, b MemberStatus) int { return strings.Compare(a.User, b.User) })
		if !slices.EqualFunc(got, snap.Members, sameMember) || c.counts[g] != [2]int{snap.Online, snap.Total} {
			t.Errorf("group %s: snapshot + deltas = %v %+v, fresh snapshot = %d/%d %+v",
				g, c.counts[g], got, snap.Online, snap.Total, snap.Members)
		}
	}
}

func TestModelRandomEvents(t *testing.T) {
	events := 3000
	if testing.Short() {
		events = 600
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, events) })
	}
}

func runModel(t *testing.T, seed uint64, events int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	v := newEnv(t)
	ctx := ctxT(t)
	const nUsers, nGroups = 24, 6
	user := func() string { return fmt.Sprintf("u%d", rng.IntN(nUsers)) }
	group := func() string { return fmt.Sprintf("g%d", rng.IntN(nGroups)) }
	var groups []string
	for g := range nGroups {
		groups = append(groups, fmt.Sprintf("g%d", g))
	}
	for range 30 {
		v.addMember(group(), user())
	}
	cfg := v.config
	a := v.start(cfg("a"))
	live := map[string]*Engine{"a": a}
	sessions := map[string][]*Session{}
	cl := newClient(t, a, groups)
	statuses := []protocol.Status{protocol.StatusOnline, protocol.StatusAway, protocol.StatusBusy}
	manuals := []protocol.Status{"", protocol.StatusBusy, protocol.StatusAway, protocol.StatusOffline}
	texts := []string{"", "", "lunch", "in a meeting"}
	pick := func() (string, *Engine) {
		names := make([]string, 0, len(live))
		for n := range live {
			names = append(names, n)
		}
		slices.Sort(names)
		n := names[rng.IntN(len(names))]
		return n, live[n]
	}
	incarnation := 0
	for i := range events {
		switch r := rng.IntN(100); {
		case r < 25: // connect
			n, e := pick()
			s, err := e.Connect(ctx, SessionInfo{User: user(), Status: statuses[rng.IntN(3)]})
			if err != nil {
				t.Fatalf("event %d: connect on %s: %v", i, n, err)
			}
			sessions[n] = append(sessions[n], s)
		case r < 40: // disconnect
			n, _ := pick()
			if ss := sessions[n]; len(ss) > 0 {
				j := rng.IntN(len(ss))
				if err := ss[j].Close(ctx); err != nil {
					t.Fatalf("event %d: close: %v", i, err)
				}
				sessions[n] = slices.Delete(ss, j, j+1)
			}
		case r < 50: // session status
			n, _ := pick()
			if ss := sessions[n]; len(ss) > 0 {
				if err := ss[rng.IntN(len(ss))].SetStatus(ctx, statuses[rng.IntN(3)], texts[rng.IntN(4)]); err != nil {
					t.Fatalf("event %d: set status: %v", i, err)
				}
			}
		case r < 58: // manual status
			_, e := pick()
			m := Manual{Status: manuals[rng.IntN(4)], Text: texts[rng.IntN(4)]}
			if rng.IntN(3) == 0 {
				m.Expires = v.clock.Now().Add(time.Duration(1+rng.IntN(10)) * time.Second)
			}
			if err := e.SetManual(ctx, user(), m); err != nil {
				t.Fatalf("event %d: manual: %v", i, err)
			}
		case r < 64: // backend source
			_, e := pick()
			ev := Event{User: user(), Source: fmt.Sprintf("src%d", rng.IntN(3)), Status: protocol.StatusOffline}
			if rng.IntN(3) > 0 {
				ev.Status = statuses[rng.IntN(3)]
				ev.TTL = time.Duration(rng.IntN(3)) * 4 * time.Second
			}
			if _, err := e.Publish(ctx, ev); err != nil {
				t.Fatalf("event %d: publish: %v", i, err)
			}
		case r < 78: // membership change
			if rng.IntN(2) == 0 {
				v.addMember(group(), user())
			} else {
				v.removeMember(group(), user())
			}
		case r < 95: // time passes
			d := time.Duration(rng.IntN(1500)) * time.Millisecond
			if rng.IntN(10) == 0 {
				d = 7 * time.Second
			}
			v.clock.Advance(d)
		case r < 98: // node death
			for n, e := range live {
				if n != "a" && rng.IntN(2) == 0 {
					e.Kill()
					delete(live, n)
					delete(sessions, n)
				}
			}
		default: // a node (re)starts, under a reused or a new id
			if len(live) < 3 {
				incarnation++
				id := []string{"b", "c", fmt.Sprintf("n%d", incarnation)}[rng.IntN(3)]
				if live[id] == nil {
					live[id] = v.start(cfg(id))
				}
			}
		}
		cl.drain(t)
		if i%500 == 499 {
			checkModel(t, v, live)
			cl.drain(t)
			cl.check(t, a)
		}
	}

	engines := checkModel(t, v, live)
	t.Logf("seed %d: %d events, %d live nodes, rev %d", seed, events, len(engines), a.Rev())
	cl.drain(t)
	cl.check(t, a)
	snapA := make([]Snapshot, 0, len(groups))
	for _, g := range groups {
		snapA = append(snapA, a.Snapshot(g))
	}
	for _, e := range engines {
		for i, g := range groups {
			if s := e.Snapshot(g); s.Rev != snapA[i].Rev || !slices.EqualFunc(s.Members, snapA[i].Members, sameMember) {
				t.Errorf("%s and a disagree on %s", e.NodeID(), g)
			}
		}
	}
}

// checkModel compares every live index with a recomputation from the
// stored entries, at one revision.
func checkModel(t *testing.T, v *env, live map[string]*Engine) []*Engine {
	t.Helper()
	engines := make([]*Engine, 0, len(live))
	for _, e := range live {
		engines = append(engines, e)
	}
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			t.Fatal("the stream never stood still")
		}
		v.sync(engines...)
		st, ok := v.readStored(t)
		if !ok {
			continue
		}
		want := st.expect()
		all := true
		for _, e := range engines {
			all = all && checkAgainstStored(t, e, st, want)
		}
		if !all {
			continue
		}
		if t.Failed() {
			t.FailNow()
		}
		return engines
	}
}
