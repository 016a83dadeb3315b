package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/protocol"
)

// Convergence (--converge, the join10k preset): while every member of a
// group comes online at once and subscribes to the group as soon as its
// hello arrives, each subscribing connection keeps the members it sees
// present, from its snapshot and every delta after it, and notes when it
// first sees all of them. The phase's result is the time from the start
// of dialling until every subscriber got there, and the spread of the
// connections' own times.

// convergeState is what one subscribing connection sees of its group: a
// bit per member (by its rank in the group), set while the member is
// present (online, away or busy). It costs a bit per member and
// connection: 12.5 MB for 10,000 connections in a group of 10,000.
//
// The connection's goroutine alone writes bits and count; seen, at and
// settled are read by others.
type convergeState struct {
	base  int // the group's first user
	size  int // its members
	bits  []uint64
	count int
	// seen is count, published for the report.
	seen atomic.Int32
	// at is when count first reached size (unix ns); 0 before.
	at atomic.Int64
	// settled is set once the connection has converged or ended: it no
	// longer counts in worker.convPending.
	settled atomic.Bool
}

func newConvergeState(base, size int) *convergeState {
	return &convergeState{base: base, size: size, bits: make([]uint64, (size+63)/64)}
}

func (s *convergeState) reset() {
	clear(s.bits)
	s.count = 0
}

// set marks the user with index u present or not; users of other groups
// are ignored.
func (s *convergeState) set(u int, present bool) {
	r := u - s.base
	if r < 0 || r >= s.size {
		return
	}
	word, bit := r>>6, uint64(1)<<(r&63)
	switch was := s.bits[word]&bit != 0; {
	case present && !was:
		s.bits[word] |= bit
		s.count++
	case !present && was:
		s.bits[word] &^= bit
		s.count--
	}
}

// userIndex returns the index of the user whose id is prefix followed by
// the index in decimal.
func userIndex(prefix string, id []byte) (int, bool) {
	if len(id) <= len(prefix) || len(id) > len(prefix)+9 || string(id[:len(prefix)]) != prefix {
		return 0, false
	}
	n := 0
	for _, d := range id[len(prefix):] {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, true
}

// startConverge gives every subscribing connection of the worker its
// convergeState; it runs before any is dialled.
func (w *worker) startConverge() {
	w.userPrefix = w.plan.Prefix + "u"
	w.convDone = make(chan struct{})
	n := 0
	for _, c := range w.conns {
		if g, ok := w.plan.subscribes(c.idx); ok {
			c.conv = newConvergeState(w.plan.groupStart[g], w.plan.groupSize[g])
			n++
		}
	}
	w.convPending.Store(int64(n))
	if n == 0 {
		close(w.convDone)
	}
}

// track applies a snapshot, resumed or delta frame of c's group to what c
// sees, and notes when c first sees every member present. It runs before
// c.rev moves to the frame's rev: changes at or below c.rev were applied
// already (a snapshot replaces everything).
func (w *worker) track(c *subConn, b []byte, op protocol.Op) {
	minRev := c.rev
	if op == protocol.OpSnapshot {
		c.conv.reset()
		minRev = 0
	}
	eachEntry(b, true, func(e entry) { w.see(c, minRev, e) })
	w.tracked(c)
}

// see applies one entry of a frame to what c sees; minRev is c's
// revision before the frame.
func (w *worker) see(c *subConn, minRev uint64, e entry) {
	if minRev > 0 && e.rev != 0 && e.rev <= minRev {
		return
	}
	if u, ok := userIndex(w.userPrefix, e.user); ok {
		c.conv.set(u, e.present())
	}
}

// tracked notes, after a frame, what c sees and when it first saw every
// member present.
func (w *worker) tracked(c *subConn) {
	s := c.conv
	s.seen.Store(int32(s.count))
	if s.count == s.size && s.at.Load() == 0 {
		s.at.Store(time.Now().UnixNano())
		w.settle(c)
	}
}

// settle takes c out of the connections still to converge, once: when it
// converged, or ended without.
func (w *worker) settle(c *subConn) {
	if c.conv == nil || !c.conv.settled.CompareAndSwap(false, true) {
		return
	}
	if w.convPending.Add(-1) == 0 {
		close(w.convDone)
	}
}

// awaitConverge waits until every subscribing connection has converged or
// ended, or until the deadline, and reports their times from the start of
// dialling.
func (w *worker) awaitConverge(cc *convergeCommand) *convergeReply {
	deadline := time.Unix(0, cc.Deadline)
	t := time.NewTimer(time.Until(deadline))
	select {
	case <-w.convDone:
	case <-t.C:
	}
	t.Stop()
	r := &convergeReply{Times: &Histogram{}}
	start := w.cc.At
	for _, c := range w.conns {
		s := c.conv
		if s == nil {
			continue
		}
		r.Tracked++
		at := s.at.Load()
		if at != 0 && at <= deadline.UnixNano() {
			r.Converged++
			r.Times.Record(time.Duration(at - start))
			continue
		}
		r.NotConverged++
		if at == 0 && s.settled.Load() {
			r.Ended++
			continue
		}
		if seen := int(s.seen.Load()); r.NotConverged-r.Ended == 1 || seen < r.FewestSeen {
			r.FewestSeen = seen
		}
	}
	return r
}

// ConvergeInfo is the convergence of a connect phase: every member of the
// groups connecting at once, each subscribing on its hello.
type ConvergeInfo struct {
	// Members is the size of the largest group: what its subscribers must
	// all see present.
	Members int `json:"members"`
	// Subscribers counts the subscribing connections; Converged those
	// that saw every member of their group present within TimeoutMs of
	// the start of dialling, NotConverged the others (connections that
	// failed or were closed among them).
	Subscribers  int `json:"subscribers"`
	Converged    int `json:"converged"`
	NotConverged int `json:"notConverged"`
	// Ended counts those of NotConverged whose connection failed or
	// ended; the others were open, short of members.
	Ended int `json:"ended,omitempty"`
	// FewestSeen is the fewest members present that an open connection
	// that did not converge saw at the end of the phase.
	FewestSeen int     `json:"fewestSeen,omitempty"`
	TimeoutMs  float64 `json:"timeoutMs"`
	// AllConvergedMs is from the start of dialling until the last
	// subscriber converged: "converged within" when NotConverged is 0,
	// else the last of those that did.
	AllConvergedMs float64 `json:"allConvergedMs"`
	// Times is each connection's convergence, from the start of dialling.
	Times LatencySummary `json:"times"`
	// Hello is from the start of dialling to each hello (it includes the
	// wait for a dial slot, --dial-parallel); Handshake from each dial to
	// its hello. The server writes hello before it fans out the joiner's
	// online change, so neither waits for the fan-out.
	Hello     LatencySummary `json:"hello"`
	Handshake LatencySummary `json:"handshake"`
	ServerCPU float64        `json:"serverCpuSeconds"`
	ClientCPU float64        `json:"clientCpuSeconds"`
	// Open counts the connections open at the end of the phase, Closed
	// those the server closed, by close code; SlowConsumers is the growth
	// of the server's presenced_slow_consumers_total over the phase (cut
	// for not reading fast enough: close 4009).
	Open          int            `json:"open"`
	Closed        map[string]int `json:"closed,omitempty"`
	SlowConsumers float64        `json:"serverSlowConsumers"`
	// Fanout is the server's delivery of the online changes from before
	// the first connection until the end of this phase.
	Fanout *FanoutInfo `json:"fanout,omitempty"`
}

// converge follows a connect phase that started dialling at start: it
// waits until every subscriber converged, at most until ConvergeTimeout
// after start. cpu0 and ccpu0 are the server's and the bench's CPU at the
// start, clientPIDs the bench's processes.
func (b *bench) converge(ctx context.Context, start time.Time, fanout *fanoutMeter, cpu0 float64, ccpu0 time.Duration, clientPIDs []int) error {
	cfg := b.cfg
	deadline := start.Add(cfg.ConvergeTimeout)
	b.logf("waiting until every subscriber sees its whole group present (until %s after the start at the latest)", cfg.ConvergeTimeout)
	replies, err := b.workers.broadcast(ctx, command{Cmd: cmdConverge, Converge: &convergeCommand{Deadline: deadline.UnixNano()}})
	if err != nil {
		return err
	}
	cv := mergeConverge(replies)
	cv.ServerCPU, cv.ClientCPU = b.serverCPU()-cpu0, (cpuOf(clientPIDs...) - ccpu0).Seconds()
	cv.TimeoutMs = ms(cfg.ConvergeTimeout)
	for _, g := range cfg.Groups {
		cv.Members = max(cv.Members, g.Size)
	}
	if c := b.rep.Connect; c != nil {
		cv.Hello, cv.Handshake = c.Hello, c.Handshake
	}
	d, _, err := b.collect(ctx, false)
	if err != nil {
		return err
	}
	cv.Open, cv.Closed = d.Open, d.Closed
	m, merr := b.rest.scrapeMetrics(ctx)
	if merr == nil && fanout.err0 == nil {
		cv.SlowConsumers = m.value(metricSlowConsumers) - fanout.m0.value(metricSlowConsumers)
	}
	if cv.Fanout, err = fanout.figures(m, merr); err != nil {
		b.fanoutNote("convergence", err)
	}
	b.rep.Converge = cv
	if cv.NotConverged == 0 {
		b.logf("all %d subscribers converged within %s", cv.Converged, fmtMs(cv.AllConvergedMs))
	} else {
		b.logf("%d of %d subscribers converged, %d did not within %s", cv.Converged, cv.Subscribers, cv.NotConverged, cfg.ConvergeTimeout)
	}
	return nil
}

func mergeConverge(replies []reply) *ConvergeInfo {
	cv := &ConvergeInfo{}
	var times Histogram
	for _, r := range replies {
		cr := r.Converge
		if cr == nil {
			continue
		}
		if open := cr.NotConverged - cr.Ended; open > 0 && (cv.NotConverged-cv.Ended == 0 || cr.FewestSeen < cv.FewestSeen) {
			cv.FewestSeen = cr.FewestSeen
		}
		cv.Subscribers += cr.Tracked
		cv.Converged += cr.Converged
		cv.NotConverged += cr.NotConverged
		cv.Ended += cr.Ended
		times.Merge(cr.Times)
	}
	cv.AllConvergedMs = ms(times.Max())
	cv.Times = times.Summary()
	return cv
}

// writeConverge writes the convergence phase in the table.
func writeConverge(t *table, cv *ConvergeInfo) {
	t.row("subscribers converged", "%d / %d (seeing every member of their group present; %d in the largest)", cv.Converged, cv.Subscribers, cv.Members)
	switch {
	case cv.Subscribers == 0:
		t.row("converged within", "no subscribers")
	case cv.NotConverged == 0:
		t.row("converged within", "%s (from the start of dialling to the last subscriber's convergence)", fmtMs(cv.AllConvergedMs))
	default:
		t.row("converged within", "not within %s (--converge-timeout): %d never converged", fmtMs(cv.TimeoutMs), cv.NotConverged)
		t.row("  not converged", "%d failed or closed; %d open, short of members (the fewest one saw present: %d of %d)",
			cv.Ended, cv.NotConverged-cv.Ended, cv.FewestSeen, cv.Members)
	}
	t.row("per connection (from start)", "%s", cv.Times)
	t.row("start → hello", "%s", cv.Hello)
	t.row("dial → hello", "%s", cv.Handshake)
	t.row("CPU server / bench", "%.2fs / %.2fs", cv.ServerCPU, cv.ClientCPU)
	t.row("connections", "%d open, closed by server: %s; %s +%.0f", cv.Open, fmtCounts(cv.Closed), metricSlowConsumers, cv.SlowConsumers)
	fanoutRow(t, cv.Fanout)
}

// convergeTarget checks the convergence target.
func convergeTarget(cv *ConvergeInfo, within time.Duration) (measured string, pass bool) {
	if cv.NotConverged > 0 {
		return fmt.Sprintf("%d of %d not converged within %s", cv.NotConverged, cv.Subscribers, fmtMs(cv.TimeoutMs)), false
	}
	return fmt.Sprintf("%s (%d/%d converged)", fmtMs(cv.AllConvergedMs), cv.Converged, cv.Subscribers),
		cv.Subscribers > 0 && cv.AllConvergedMs <= ms(within)
}
