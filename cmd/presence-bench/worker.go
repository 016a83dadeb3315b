package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/protocol"
)

// runWorker serves commands from in until close or the end of in, and
// answers each with one reply on out. It is the whole life of a worker
// process; it returns once every connection is closed and every goroutine
// it started has ended. atClose runs once the run's work is over, before
// the connections are closed: closing thousands of them can outlast the
// parent's patience, and what is measured must not be lost with them.
func runWorker(ctx context.Context, in io.Reader, out io.Writer, atClose func()) error {
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	w := &worker{closed: map[string]int{}}
	defer w.closeAll()
	defer atClose()
	for {
		var cmd command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("presence-bench worker: read command: %w", err)
		}
		if cmd.Cmd == cmdClose {
			atClose()
		}
		r := w.do(ctx, cmd)
		r.PID = os.Getpid()
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("presence-bench worker: write reply: %w", err)
		}
		if cmd.Cmd == cmdClose {
			return nil
		}
	}
}

// worker holds the subscriber connections of one process.
type worker struct {
	plan  *plan
	cc    *connectCommand
	conns []*subConn
	// readers counts the goroutines of the connections; cancel ends them.
	readers sync.WaitGroup
	cancel  context.CancelFunc

	// jitter, if set, delays each dial by a random time below it.
	jitter time.Duration

	// A split connect holds subscribers after hello until gate closes;
	// subscribing counts them until they have their reply. gateAt,
	// gateDeadline and subTally are written before gate closes.
	gate         chan struct{}
	subscribing  sync.WaitGroup
	gateAt       time.Time
	gateDeadline time.Time
	subTally     *connTally

	// sched is the timetable of changes; perSeq, written before sched is
	// stored, counts the deliveries of each.
	sched        atomic.Pointer[schedule]
	perSeq       []atomic.Uint32
	lat          shardedHist
	nodeLat      []shardedHist // by the node of the subscriber, with several URLs
	deliveries   atomic.Uint64
	frames       atomic.Uint64
	changes      atomic.Uint64
	stray        atomic.Uint64
	lastDelivery atomic.Int64
	open         atomic.Int64

	// With Converge, convPending counts the subscribing connections that
	// have neither converged nor ended; convDone closes when it reaches
	// 0. userPrefix is what user ids start with.
	convPending atomic.Int64
	convDone    chan struct{}
	userPrefix  string

	mu sync.Mutex
	// mu guards the following fields.
	closed map[string]int // close code → connections the server closed
	ended  int            // subscriptions ended by an error push
}

// subConn is one subscriber connection. Its fields other than last are
// written by its own goroutine only, and read after that goroutine ended.
type subConn struct {
	idx   int
	user  string
	group string // "" when the connection does not subscribe
	ws    *websocket.Conn
	rev   uint64
	epoch string

	// conv is what the connection sees of its group, when the run
	// measures convergence.
	conv *convergeState

	mu sync.Mutex
	// mu guards the following field.
	last map[string]int // user → last marker seen, when tracking
}

func (w *worker) do(ctx context.Context, cmd command) reply {
	switch cmd.Cmd {
	case cmdConnect:
		if cmd.Connect == nil || w.cc != nil {
			return reply{Err: "connect: missing, or sent twice"}
		}
		cr, err := w.connect(ctx, cmd.Connect)
		if err != nil {
			return reply{Err: err.Error()}
		}
		return reply{Connect: cr}
	case cmdSubscribe:
		if cmd.Subscribe == nil || w.cc == nil || !w.cc.Split {
			return reply{Err: "subscribe: missing, or without a split connect"}
		}
		return reply{Connect: w.subscribeAll(cmd.Subscribe)}
	case cmdSchedule:
		if cmd.Schedule == nil {
			return reply{Err: "schedule: missing"}
		}
		if cmd.Schedule.Count < 0 || cmd.Schedule.Count > maxChanges {
			return reply{Err: "schedule: count out of range"}
		}
		w.perSeq = make([]atomic.Uint32, cmd.Schedule.Count)
		w.sched.Store(cmd.Schedule)
		return reply{}
	case cmdCollect:
		d := w.collect()
		if cmd.PerSeq {
			d.PerSeq = make([]byte, 4*len(w.perSeq))
			for i := range w.perSeq {
				binary.LittleEndian.PutUint32(d.PerSeq[4*i:], w.perSeq[i].Load())
			}
		}
		return reply{Delivery: d}
	case cmdReconnect:
		if cmd.Reconnect == nil || w.cc == nil {
			return reply{Err: "reconnect: missing, or before connect"}
		}
		return reply{Connect: w.reconnect(ctx, cmd.Reconnect)}
	case cmdVerify:
		return reply{Verify: w.verify(cmd.Verify)}
	case cmdConverge:
		if cmd.Converge == nil || w.convDone == nil {
			return reply{Err: "converge: missing, or without a converge connect"}
		}
		return reply{Converge: w.awaitConverge(cmd.Converge)}
	case cmdClose:
		w.closeAll()
		return reply{Delivery: w.collect()}
	}
	return reply{Err: "unknown command " + strconv.Quote(cmd.Cmd)}
}

func (w *worker) connect(ctx context.Context, cc *connectCommand) (*connectReply, error) {
	p, err := newPlan(cc.Topology)
	if err != nil {
		return nil, err
	}
	if cc.Count < 0 || cc.First < 0 || cc.First+cc.Count > cc.Topology.Conns {
		return nil, fmt.Errorf("connections %d+%d out of %d", cc.First, cc.Count, cc.Topology.Conns)
	}
	w.plan, w.cc = p, cc
	if len(cc.URLs) > 1 {
		w.nodeLat = make([]shardedHist, len(cc.URLs))
	}
	w.conns = make([]*subConn, cc.Count)
	for k := range w.conns {
		i := cc.First + k
		c := &subConn{idx: i, user: p.userID(p.connUser(i))}
		if g, ok := p.subscribes(i); ok {
			c.group = p.groupID(g)
			if cc.Track {
				c.last = map[string]int{}
			}
		}
		w.conns[k] = c
	}
	if cc.Converge {
		w.startConverge()
	}
	return w.dialAll(ctx, cc.At, cc.Sources, cc.PerSource, cc.Parallel, cc.TimeoutMs, false, cc.Split), nil
}

// connTally collects the outcome of a dialling or subscribing phase.
type connTally struct {
	mu sync.Mutex
	// mu guards the following field.
	r connectReply
}

func newConnTally() *connTally {
	return &connTally{r: connectReply{Errors: map[string]int{}, Hello: &Histogram{}, Ready: &Histogram{},
		Handshake: &Histogram{}, Subscribe: &Histogram{}}}
}

func (t *connTally) reply() *connectReply {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.r
	return &r
}

var addrPattern = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

func (t *connTally) fail(err error) {
	msg := addrPattern.ReplaceAllString(err.Error(), "ADDR")
	if len(msg) > 160 {
		msg = msg[:160]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Failed++
	if _, ok := t.r.Errors[msg]; ok || len(t.r.Errors) < 20 {
		t.r.Errors[msg]++
	}
}

// dialPhase is one round of dialling every connection of the worker.
type dialPhase struct {
	start  time.Time
	resume bool
	// split holds subscribers after hello until the gate opens.
	split bool
}

// dialAll opens every connection of the worker from the given sources,
// starting at the unix time at, and leaves each reading in its own
// goroutine. It returns when every connection is subscribed or failed;
// with split, when every connection has its hello, the subscribers then
// waiting for subscribeAll.
func (w *worker) dialAll(ctx context.Context, at int64, sources []string, perSource, parallel int, timeoutMs int64, resume, split bool) *connectReply {
	if len(sources) == 0 {
		sources = []string{""}
	}
	clients := make([]*http.Client, len(sources))
	for i, s := range sources {
		clients[i] = newSourceClient(s)
	}
	if parallel <= 0 {
		parallel = 256
	}
	if perSource <= 0 {
		perSource = len(w.conns)
	}
	tally := newConnTally()
	dp := dialPhase{start: time.Unix(0, at), resume: resume, split: split}
	if d := time.Until(dp.start); d > 0 {
		time.Sleep(d)
	}
	phase, cancelPhase := context.WithTimeout(ctx, time.Duration(timeoutMs)*time.Millisecond)
	defer cancelPhase()
	readCtx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.gate = make(chan struct{})
	exp := time.Unix(w.cc.Expires, 0)
	secret := []byte(w.cc.Secret)
	sem := make(chan struct{}, parallel)
	var ready sync.WaitGroup
	for k, c := range w.conns {
		src := clients[min(k/perSource, len(clients)-1)]
		held := split && c.group != ""
		ready.Add(1)
		if held {
			w.subscribing.Add(1)
		}
		w.readers.Go(func() {
			ok := w.dial1(phase, c, src, dp, exp, secret, sem, tally)
			switch {
			case held:
				ready.Done()
				ok = ok && w.awaitGate(readCtx, c)
				w.subscribing.Done()
			case ok && c.group != "":
				ok = w.subscribe1(phase, c, dp.start, resume, tally)
				ready.Done()
			default:
				ready.Done()
			}
			if ok {
				w.read(readCtx, c)
			}
			// Failed or ended: it will not converge now.
			w.settle(c)
		})
	}
	ready.Wait()
	return tally.reply()
}

// awaitGate holds a connection after hello until subscribeAll opens the
// gate, then subscribes it. The connection is read all along, as a client
// does: the server pings a connection silent for a third of its idle
// timeout and closes it when no pong comes, and coder/websocket answers a
// ping only while the connection is read. A connect phase of minutes (a
// cluster of 100,000 connections on two cores) lost thousands of held
// connections to that before.
func (w *worker) awaitGate(ctx context.Context, c *subConn) bool {
	type start struct {
		at, gateAt time.Time
		deadline   time.Time
		tally      *connTally
		timer      *time.Timer // ends a connection without a reply by the deadline
		err        error
	}
	started := make(chan start, 1)
	go func() {
		select {
		case <-w.gate:
		case <-ctx.Done():
			started <- start{err: fmt.Errorf("not subscribed: %w", ctx.Err())}
			return
		}
		// Written before the gate opened.
		st := start{at: time.Now(), gateAt: w.gateAt, deadline: w.gateDeadline, tally: w.subTally}
		wctx, cancel := context.WithDeadline(ctx, st.deadline)
		st.err = c.ws.Write(wctx, websocket.MessageText, subscribeFrame(1, c.group, 0, ""))
		cancel()
		if st.err != nil {
			st.err = fmt.Errorf("subscribe: %w", st.err)
			c.ws.CloseNow()
		} else {
			// The reply must come by the deadline of the subscribe phase.
			st.timer = time.AfterFunc(time.Until(st.deadline), func() { c.ws.CloseNow() })
		}
		started <- st
	}()
	var track func([]byte)
	if c.conv != nil {
		track = func(b []byte) { w.track(c, b, frameOp(b)) }
	}
	hdr, size, err := awaitInitial(ctx, c.ws, 1, track)
	st := <-started
	if st.timer != nil {
		st.timer.Stop()
	}
	if st.err == nil && err != nil {
		err = fmt.Errorf("subscribe: %w", err)
	}
	if st.err != nil {
		err = st.err
	}
	if st.tally == nil { // the gate never opened
		c.ws.CloseNow()
		return false
	}
	if err != nil {
		c.ws.CloseNow()
		st.tally.fail(err)
		return false
	}
	st.tally.subscribed(c, hdr, size, st.at, st.gateAt)
	return true
}

// subscribeAll lets the connections held by a split connect subscribe, all
// at once from at, and waits for their replies.
func (w *worker) subscribeAll(sc *subscribeCommand) *connectReply {
	if d := time.Until(time.Unix(0, sc.At)); d > 0 {
		time.Sleep(d)
	}
	// Written before the gate opens, read by the connections after.
	w.gateAt = time.Unix(0, sc.At)
	w.subTally = newConnTally()
	w.gateDeadline = w.gateAt.Add(time.Duration(sc.TimeoutMs) * time.Millisecond)
	close(w.gate)
	w.subscribing.Wait()
	return w.subTally.reply()
}

// dial1 dials one connection and reads its hello.
func (w *worker) dial1(ctx context.Context, c *subConn, hc *http.Client, dp dialPhase, exp time.Time, secret []byte,
	sem chan struct{}, tally *connTally) bool {
	token, err := userToken(secret, c.user, exp)
	if err != nil {
		tally.fail(err)
		return false
	}
	if w.jitter > 0 {
		t := time.NewTimer(rand.N(w.jitter))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			tally.fail(fmt.Errorf("not dialled: %w", ctx.Err()))
			return false
		}
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		tally.fail(fmt.Errorf("not dialled: %w", ctx.Err()))
		return false
	}
	t1 := time.Now()
	ws, err := dialWS(ctx, hc, wsURL(w.cc.url(c.idx)), token)
	if err == nil {
		_, err = readHello(ctx, ws)
		if err != nil {
			ws.CloseNow()
		}
	}
	<-sem
	if err != nil {
		tally.fail(err)
		return false
	}
	t2 := time.Now()
	c.ws = ws
	tally.mu.Lock()
	defer tally.mu.Unlock()
	r := &tally.r
	r.Connected++
	r.Hello.Record(t2.Sub(dp.start))
	r.Handshake.Record(t2.Sub(t1))
	if c.group == "" || dp.split {
		r.Ready.Record(t2.Sub(dp.start))
	}
	return true
}

// subscribe1 subscribes a connection to its group, resuming from its last
// revision when resume, and records the time from start to the reply.
func (w *worker) subscribe1(ctx context.Context, c *subConn, start time.Time, resume bool, tally *connTally) bool {
	rev, epoch := uint64(0), ""
	if resume {
		rev, epoch = c.rev, c.epoch
	}
	t := time.Now()
	if err := c.ws.Write(ctx, websocket.MessageText, subscribeFrame(1, c.group, rev, epoch)); err != nil {
		c.ws.CloseNow()
		tally.fail(fmt.Errorf("subscribe: %w", err))
		return false
	}
	var track func([]byte)
	if c.conv != nil {
		track = func(b []byte) { w.track(c, b, frameOp(b)) }
	}
	hdr, size, err := awaitInitial(ctx, c.ws, 1, track)
	if err != nil {
		c.ws.CloseNow()
		tally.fail(err)
		return false
	}
	tally.subscribed(c, hdr, size, t, start)
	return true
}

// subscribed records c's reply to its subscribe, sent at sent, of a phase
// that began at start, and keeps the revision it gives.
func (tally *connTally) subscribed(c *subConn, hdr frameHeader, size int, sent, start time.Time) {
	done := time.Now()
	c.rev = hdr.Rev
	if hdr.Epoch != "" {
		c.epoch = hdr.Epoch
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	r := &tally.r
	r.Subscribed++
	r.Subscribe.Record(done.Sub(sent))
	r.Ready.Record(done.Sub(start))
	if hdr.Op == protocol.OpResumed {
		r.Resumed++
	}
	r.SnapshotBytes = max(r.SnapshotBytes, size)
}

// read handles the frames of one connection until it ends: the server
// closed it, or dropAll did (and then cancelled ctx). Reads themselves get
// no context, which saves coder/websocket arming a context watch per
// frame.
func (w *worker) read(ctx context.Context, c *subConn) {
	w.open.Add(1)
	defer w.open.Add(-1)
	for {
		buf, err := readFrame(context.Background(), c.ws)
		if err != nil {
			if ctx.Err() == nil {
				code := "closed"
				if st := websocket.CloseStatus(err); st != -1 {
					code = strconv.Itoa(int(st))
				}
				w.mu.Lock()
				w.closed[code]++
				w.mu.Unlock()
			}
			c.ws.CloseNow()
			return
		}
		w.handle(c, buf.Bytes())
		putFrame(buf)
	}
}

func (w *worker) handle(c *subConn, b []byte) {
	switch frameOp(b) {
	case protocol.OpDelta:
		w.frames.Add(1)
		rev, ok := headerUint(b, "rev")
		// A delta not above the connection's revision was applied
		// already (the protocol's rule; the server sends none).
		tracking, minRev := c.conv != nil && (!ok || rev > c.rev), c.rev
		if ok && rev > c.rev {
			c.rev = rev
		}
		s := w.sched.Load()
		now := time.Now().UnixNano()
		var seen, delivered, stray uint64
		// One pass over the changes serves both the convergence and the
		// markers of the changes this tool made.
		eachEntry(b, false, func(e entry) {
			if tracking {
				w.see(c, minRev, e)
			}
			seq, ok := marker(e.text)
			if !ok {
				return
			}
			user := e.user
			seen++
			if s == nil || seq >= s.Count {
				stray++
				return
			}
			delivered++
			w.perSeq[seq].Add(1)
			w.lat.Record(c.idx, time.Duration(now-s.due(seq)))
			if w.nodeLat != nil {
				w.nodeLat[c.idx%len(w.nodeLat)].Record(c.idx, time.Duration(now-s.due(seq)))
			}
			if c.last != nil {
				c.mu.Lock()
				c.last[string(user)] = seq
				c.mu.Unlock()
			}
		})
		if tracking {
			w.tracked(c)
		}
		w.changes.Add(seen)
		if stray > 0 {
			w.stray.Add(stray)
		}
		if delivered > 0 {
			w.deliveries.Add(delivered)
			w.lastDelivery.Store(now)
		}
	case protocol.OpSnapshot, protocol.OpResumed:
		if c.conv != nil {
			w.track(c, b, frameOp(b))
		}
		if h, err := parseHeader(b); err == nil {
			c.rev = h.Rev
			if h.Epoch != "" {
				c.epoch = h.Epoch
			}
		}
	case protocol.OpError:
		if f, err := protocol.DecodeServerFrame(b); err == nil && f.Group != "" {
			w.mu.Lock()
			w.ended++
			w.mu.Unlock()
		}
	}
}

func (w *worker) collect() *deliveryReply {
	r := &deliveryReply{
		Deliveries:   w.deliveries.Load(),
		Latency:      w.lat.Snapshot(false),
		Frames:       w.frames.Load(),
		Changes:      w.changes.Load(),
		Stray:        w.stray.Load(),
		LastDelivery: w.lastDelivery.Load(),
		Open:         int(w.open.Load()),
	}
	for i := range w.nodeLat {
		r.NodeLatency = append(r.NodeLatency, w.nodeLat[i].Snapshot(false))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r.Ended = w.ended
	if len(w.closed) > 0 {
		r.Closed = make(map[string]int, len(w.closed))
		for k, v := range w.closed {
			r.Closed[k] = v
		}
	}
	return r
}

// dropAll closes every connection at once, as a network failure would,
// and waits for their goroutines.
func (w *worker) dropAll() {
	// Cancel first, so that readers see their connection's end as ours.
	if w.cancel != nil {
		w.cancel()
	}
	for _, c := range w.conns {
		if c.ws != nil {
			c.ws.CloseNow()
		}
	}
	w.readers.Wait()
	for _, c := range w.conns {
		c.ws = nil
	}
}

func (w *worker) reconnect(ctx context.Context, rc *reconnectCommand) *connectReply {
	if d := time.Until(time.Unix(0, rc.At)); d > 0 {
		time.Sleep(d)
	}
	w.dropAll()
	// The closes above were not the server's doing.
	w.mu.Lock()
	clear(w.closed)
	w.mu.Unlock()
	w.jitter = time.Duration(rc.JitterMs) * time.Millisecond
	return w.dialAll(ctx, rc.At, rc.Sources, rc.PerSource, rc.Parallel, rc.TimeoutMs, rc.Resume, false)
}

func (w *worker) verify(final map[string]int) *verifyReply {
	r := &verifyReply{}
	if w.plan == nil {
		return r
	}
	type want struct {
		user string
		seq  int
	}
	byGroup := map[string][]want{}
	for user, seq := range final {
		n, err := strconv.Atoi(strings.TrimPrefix(user, w.plan.Prefix+"u"))
		if err != nil || n < 0 || n >= w.plan.Users() {
			continue
		}
		g := w.plan.groupID(int(w.plan.userGroup[n]))
		byGroup[g] = append(byGroup[g], want{user, seq})
	}
	for _, c := range w.conns {
		if c.last == nil {
			continue
		}
		c.mu.Lock()
		for _, x := range byGroup[c.group] {
			r.Total++
			if got, ok := c.last[x.user]; ok && got == x.seq {
				r.Match++
			}
		}
		c.mu.Unlock()
	}
	return r
}

func (w *worker) closeAll() {
	w.dropAll()
}
