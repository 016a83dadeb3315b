package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/presenced/presenced/protocol"
)

// Goals of issue 14, per scenario.
const (
	offlineGoal  = 10 * time.Second // a dead or cut-off node's users offline everywhere
	convergeGoal = 10 * time.Second // identical, correct snapshots after a fault or heal
	toldGoal     = 10 * time.Second // a cut-off node says so (REST 503, WebSocket told)
	// storeRecoveryGoal: identical, correct snapshots after an external
	// NATS elected the presence stream's leader again (convergeDeadline).
	storeRecoveryGoal = 2 * time.Second
)

// phase is the stretch of a scenario that follows one fault, heal or
// restart.
type phase struct {
	from, to time.Time
	// majority are the nodes that stay up and connected through the phase:
	// their observers count, their snapshots must agree.
	majority []*Node
	// faulted are the users who must go offline on the majority's
	// observers, once.
	faulted []*User
	// storeBack, when set, is when the presence stream had a leader again
	// after a fault of an external NATS, whose elections presenced does
	// not pace (see convergeDeadline).
	storeBack time.Time
}

// expected returns, for every WebSocket user, whether it must be shown
// online: it has an open connection to a node of the majority.
func (e *Env) expected(majority []*Node) map[string]bool {
	names := e.nodeNames(majority...)
	out := map[string]bool{}
	for _, u := range e.Users.list {
		n, ok := u.Connected()
		out[u.ID] = ok && slices.Contains(names, n)
	}
	return out
}

// agree reports whether every named node answered the round with the same
// snapshot.
func agree(r round, nodes []string) bool {
	key := ""
	for i, n := range nodes {
		p, ok := r.nodes[n]
		if !ok || !p.ok() {
			return false
		}
		if k := p.snap.key(); i == 0 {
			key = k
		} else if k != key {
			return false
		}
	}
	return true
}

// wrong lists the users whose presence in node's snapshot is not expect.
func wrong(s Snapshot, expect map[string]bool) []string {
	var out []string
	for u, on := range expect {
		st, _ := s.status(u)
		if (st == protocol.StatusOnline) != on {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// good reports whether every node of nodes served the same snapshot in r,
// showing exactly the expected users online; why says what was not.
func good(r round, nodes []string, expect map[string]bool) (bool, string) {
	for _, n := range nodes {
		p, ok := r.nodes[n]
		switch {
		case !ok:
			return false, n + " not read"
		case p.err != nil:
			return false, fmt.Sprintf("%s: %v", n, p.err)
		case !p.ok():
			return false, fmt.Sprintf("%s answered %s", n, p.reply)
		case !p.ready:
			return false, n + " serves snapshots but /readyz is not 200"
		}
		if w := wrong(p.snap, expect); len(w) > 0 {
			return false, fmt.Sprintf("%s shows %d users wrong (%s)", n, len(w), short(w))
		}
	}
	if !agree(r, nodes) {
		var revs []string
		for _, n := range nodes {
			revs = append(revs, fmt.Sprintf("%s@%d", n, r.nodes[n].snap.Rev))
		}
		return false, "snapshots differ: " + strings.Join(revs, " ")
	}
	return true, ""
}

// convergence finds the final stretch of [from, to] in which the majority
// served identical, correct snapshots: since is when it began. ok is false
// when the last round was not good, with the reason; otherwise why says
// what the round before the stretch found wrong, if there was one.
func (e *Env) convergence(from, to time.Time, majority []*Node, expect map[string]bool) (since time.Time, ok bool, why string) {
	rs := e.Poller.between(from, to)
	if len(rs) == 0 {
		return time.Time{}, false, "no snapshot read"
	}
	names := e.nodeNames(majority...)
	last := len(rs) - 1
	if ok, why := good(rs[last], names, expect); !ok {
		return time.Time{}, false, why
	}
	since = rs[last].at
	for i := last - 1; i >= 0; i-- {
		if ok, bad := good(rs[i], names, expect); !ok {
			return since, true, fmt.Sprintf("at %s: %s", secs(rs[i].at.Sub(from)), bad)
		}
		since = rs[i].at
	}
	return since, true, ""
}

// offlineResult is how the faulted users went offline on the majority's
// observers.
type offlineResult struct {
	worst   time.Duration // the last (observer, user) pair to see offline
	pairs   int
	missing int // pairs that never saw offline
	repeats int // pairs that saw offline more than once, or online again
}

func (e *Env) offlineTimes(ph phase, to time.Time) offlineResult {
	var res offlineResult
	for _, o := range e.observersOn(ph.majority...) {
		trs, _, _ := o.records()
		for _, u := range ph.faulted {
			res.pairs++
			var first time.Time
			offs, backs := 0, 0
			for _, tr := range trs {
				if tr.user != u.ID || tr.at.Before(ph.from) || tr.at.After(to) {
					continue
				}
				if tr.offline {
					offs++
					if first.IsZero() {
						first = tr.at
					}
				} else if offs > 0 {
					backs++
				}
			}
			if offs == 0 {
				res.missing++
				continue
			}
			res.worst = max(res.worst, first.Sub(ph.from))
			if offs > 1 || backs > 0 {
				res.repeats++
			}
		}
	}
	return res
}

// falseResult counts false offlines: a user connected to a live majority
// node, seen offline by an observer of a live majority node.
type falseResult struct {
	users  map[string]bool
	events int
	back   []time.Duration // how long until the same observer saw them back
	first  time.Duration   // earliest, from the start of the window
}

func (e *Env) falseOfflines(from, to time.Time) falseResult {
	res := falseResult{users: map[string]bool{}}
	for _, o := range e.Observers {
		trs, _, _ := o.records()
		for i, tr := range trs {
			if !tr.offline || tr.at.Before(from) || tr.at.After(to) || !e.TL.Majority(o.Node.Name, tr.at) {
				continue
			}
			u := e.Users.byID[tr.user]
			if u == nil || !u.presentThrough(e.TL, tr.at.Add(-grace), tr.at, time.Second) {
				continue
			}
			if res.events == 0 || tr.at.Sub(from) < res.first {
				res.first = tr.at.Sub(from)
			}
			res.events++
			res.users[tr.user] = true
			for _, tr2 := range trs[i+1:] {
				if tr2.user == tr.user && !tr2.offline {
					res.back = append(res.back, tr2.at.Sub(tr.at))
					break
				}
			}
		}
	}
	return res
}

// settle waits until the phase is over: at least min after its start, and
// then until every faulted user is offline on every majority observer and
// the majority has served identical, correct snapshots for 2s, or until
// max. It sets ph.to.
func (e *Env) settle(ctx context.Context, ph *phase, min, max time.Duration) {
	for {
		now := time.Now()
		el := now.Sub(ph.from)
		if el >= max || ctx.Err() != nil {
			break
		}
		if el >= min {
			off := e.offlineTimes(*ph, now)
			since, ok, _ := e.convergence(ph.from, now, ph.majority, e.expected(ph.majority))
			if off.missing == 0 && ok && now.Sub(since) >= 2*time.Second {
				break
			}
		}
		_ = sleep(ctx, 250*time.Millisecond)
	}
	ph.to = time.Now()
}

// judgeOffline fills the time-to-offline column of row.
func (e *Env) judgeOffline(row *Row, ph phase) {
	off := e.offlineTimes(ph, ph.to)
	switch {
	case off.pairs == 0:
		row.add(&row.Offline, "-")
	case off.missing > 0:
		row.add(&row.Offline, fmt.Sprintf("never (%d of %d sightings missing after %s)", off.missing, off.pairs, secs(ph.to.Sub(ph.from))))
		row.fail("offline: %d of %d (observer, user) pairs never saw the %d users of the lost node offline within %s",
			off.missing, off.pairs, len(ph.faulted), secs(ph.to.Sub(ph.from)))
	default:
		row.add(&row.Offline, secs(off.worst))
		if off.worst > offlineGoal {
			row.fail("offline: the lost node's users were offline everywhere only after %s (goal %s)", secs(off.worst), secs(offlineGoal))
		}
	}
	if off.repeats > 0 {
		row.note("%d (observer, user) pairs saw offline more than once or online again", off.repeats)
		row.fail("offline not exactly once: %d (observer, user) pairs", off.repeats)
	}
}

// judgeFalse fills the false-offline column for [from, to], named label.
func (e *Env) judgeFalse(row *Row, label string, from, to time.Time) {
	fr := e.falseOfflines(from, to)
	if fr.events == 0 {
		row.add(&row.FalseOfflines, prefix(label)+"0")
		return
	}
	slices.Sort(fr.back)
	back := "not back"
	if len(fr.back) > 0 {
		back = fmt.Sprintf("back after %s-%s", secs(fr.back[0]), secs(fr.back[len(fr.back)-1]))
	}
	row.add(&row.FalseOfflines, fmt.Sprintf("%s%d users (%d sightings, first at +%s, %s)", prefix(label), len(fr.users), fr.events, secs(fr.first), back))
	row.fail("%sfalse offlines: %d users connected to live majority nodes were shown offline by majority observers (%d sightings)",
		prefix(label), len(fr.users), fr.events)
}

// judgeConverge fills the converge column for a phase, named label.
func (e *Env) judgeConverge(row *Row, label string, ph phase) {
	since, ok, why := e.convergence(ph.from, ph.to, ph.majority, e.expected(ph.majority))
	if !ok {
		row.add(&row.Converge, fmt.Sprintf("%snever (%s)", prefix(label), secs(ph.to.Sub(ph.from))))
		row.fail("%sno identical, correct snapshots on %s within %s: %s", prefix(label),
			strings.Join(e.nodeNames(ph.majority...), ","), secs(ph.to.Sub(ph.from)), why)
		return
	}
	d := max(since.Sub(ph.from), 0)
	row.add(&row.Converge, prefix(label)+secs(d))
	if goal, after := convergeDeadline(ph); d > goal {
		row.fail("%sidentical, correct snapshots only after %s (goal %s%s); the last round that was not, %s",
			prefix(label), secs(d), secs(goal), after, why)
	}
}

// convergeDeadline is how long after the fault the nodes have to agree:
// convergeGoal, or, when an external NATS took longer than that to elect
// the presence stream's leader again, storeRecoveryGoal after it did.
// Nothing is written until then, and presenced cannot pace an external
// NATS's elections: at NATS's defaults they took 4.2-8.5 s in ten runs of
// external-leader-kill, and once 15.4 s. The embedded server's elections are
// presenced's own, and its scenarios keep convergeGoal.
func convergeDeadline(ph phase) (time.Duration, string) {
	if ph.storeBack.IsZero() {
		return convergeGoal, ""
	}
	back := ph.storeBack.Sub(ph.from)
	if back+storeRecoveryGoal <= convergeGoal {
		return convergeGoal, ""
	}
	return back + storeRecoveryGoal, fmt.Sprintf(": %s after NATS elected the presence stream's leader, %s after the fault", secs(storeRecoveryGoal), secs(back))
}

func prefix(label string) string {
	if label == "" {
		return ""
	}
	return label + " "
}

// finish stops the writers and checks the final state on nodes: every
// acknowledged status is there, every node is ready.
func (e *Env) finish(ctx context.Context, row *Row, writers *Writers, nodes []*Node) {
	// The final check runs even when the scenario used up its time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	writers.Stop()
	_ = sleep(ctx, time.Second)
	lost := map[string]string{}
	for _, n := range nodes {
		if p := n.Process(); p != nil {
			if ok, _ := p.Exited(); ok {
				row.fail("final state: %s exited with status %d: %s", n.Name, p.ExitCode(), lastError(n.LogPath))
				continue
			}
		}
		var s Snapshot
		var last string
		for try := 0; try < 20; try++ {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			snap, r, err := e.API.Snapshot(qctx, n.URL, group)
			cancel()
			if err == nil && r.OK() {
				s, last = snap, ""
				break
			}
			last = fmt.Sprint(r, err)
			_ = sleep(ctx, 500*time.Millisecond)
		}
		if last != "" {
			row.fail("final state: %s serves no snapshot: %s", n.Name, last)
			continue
		}
		for _, msg := range writers.lost(s) {
			id, _, _ := strings.Cut(msg, " ")
			lost[id] = n.Name + ": " + msg
		}
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		r, err := e.API.Ready(qctx, n.URL)
		cancel()
		if err != nil || !r.OK() {
			row.fail("final state: %s not ready: %v %s", n.Name, err, strings.TrimSpace(string(r.Body)))
		}
	}
	e.noteSkips(ctx, row, nodes)
	row.LostAcks = fmt.Sprintf("%d of %d writers (%d acks)", len(lost), len(writers.list), writers.acked())
	if f := writers.failed(); f > 0 {
		row.note("%d status writes not acknowledged", f)
	}
	if len(lost) > 0 {
		ids := slices.Sorted(maps.Keys(lost))
		for _, id := range ids {
			row.note("lost ack: %s", lost[id])
		}
		row.fail("acknowledged writes lost: the last acknowledged status of %d writers is not in the final state", len(lost))
	}
}

// noteSkips notes how many stream entries the watches of nodes that ran
// since setup never applied: a skipped entry is a change no subscriber of
// that node received.
func (e *Env) noteSkips(ctx context.Context, row *Row, nodes []*Node) {
	var parts []string
	for _, n := range nodes {
		before, ok := e.counters[n.Name]
		if !ok || e.TL.starts(n.Name) != 1 {
			continue
		}
		mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		m, err := e.API.Metrics(mctx, n.URL, "presenced_revision", "presenced_stream_entries_applied_total")
		cancel()
		if err != nil {
			continue
		}
		skipped := int64(m["presenced_revision"]) - int64(before.rev) - (int64(m["presenced_stream_entries_applied_total"]) - int64(before.applied))
		parts = append(parts, fmt.Sprintf("%s:%d", n.Name, skipped))
	}
	if len(parts) > 0 {
		row.note("stream entries the watch skipped since setup: %s", strings.Join(parts, " "))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func short(ids []string) string {
	if len(ids) > 5 {
		return strings.Join(ids[:5], ",") + ",..."
	}
	return strings.Join(ids, ",")
}
