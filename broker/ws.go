package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/broker/internal/netpoll"
	"github.com/presenced/presenced/broker/internal/wsaccept"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// wsConns tracks open WebSockets so that a graceful shutdown can close them
// with "going away".
type wsConns struct {
	mu sync.Mutex
	// mu guards the following fields.
	m       map[*wsConn]struct{}
	byUser  map[string]connSet // by the user acted for
	byToken map[string]connSet // by the API token authenticated with
	closed  bool
}

// connSet is a set of connections: a slice while it is small (a user or a
// token has one connection, most often: 8 bytes instead of a map of its
// own, 120), a map past smallConnSet.
type connSet struct {
	few  []*wsConn
	many map[*wsConn]struct{}
}

const smallConnSet = 8

func (s connSet) add(c *wsConn) connSet {
	switch {
	case s.many != nil:
		s.many[c] = struct{}{}
	case len(s.few) < smallConnSet:
		if !slices.Contains(s.few, c) {
			s.few = append(s.few, c)
		}
	default:
		s.many = make(map[*wsConn]struct{}, 2*smallConnSet)
		for _, o := range s.few {
			s.many[o] = struct{}{}
		}
		s.many[c] = struct{}{}
		s.few = nil
	}
	return s
}

func (s connSet) remove(c *wsConn) connSet {
	if s.many != nil {
		delete(s.many, c)
	} else if i := slices.Index(s.few, c); i >= 0 {
		s.few = slices.Delete(s.few, i, i+1)
	}
	return s
}

func (s connSet) len() int { return len(s.few) + len(s.many) }

func (s connSet) list() []*wsConn {
	out := make([]*wsConn, 0, s.len())
	out = append(out, s.few...)
	for c := range s.many {
		out = append(out, c)
	}
	return out
}

func (cs *wsConns) add(c *wsConn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	if cs.m == nil {
		cs.m = map[*wsConn]struct{}{}
		cs.byUser = map[string]connSet{}
		cs.byToken = map[string]connSet{}
	}
	cs.m[c] = struct{}{}
	c.mu.Lock()
	p := c.p
	c.mu.Unlock()
	addTo(cs.byUser, p.UserID, c)
	addTo(cs.byToken, p.TokenID, c)
	return true
}

func (cs *wsConns) remove(c *wsConn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.mu.Lock()
	p := c.p
	c.mu.Unlock()
	delete(cs.m, c)
	delFrom(cs.byUser, p.UserID, c)
	delFrom(cs.byToken, p.TokenID, c)
}

// setPrincipal gives c a new credential (a refresh may bring another
// token) and files it under it. Lock order: wsConns.mu before wsConn.mu.
func (cs *wsConns) setPrincipal(c *wsConn, p Principal) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.mu.Lock()
	old := c.p
	c.p = p
	c.mu.Unlock()
	if _, ok := cs.m[c]; ok {
		delFrom(cs.byToken, old.TokenID, c)
		addTo(cs.byToken, p.TokenID, c)
	}
}

func addTo(by map[string]connSet, key string, c *wsConn) {
	if key == "" {
		return
	}
	by[key] = by[key].add(c)
}

func delFrom(by map[string]connSet, key string, c *wsConn) {
	set, ok := by[key]
	if !ok {
		return
	}
	if set = set.remove(c); set.len() == 0 {
		delete(by, key)
	} else {
		by[key] = set
	}
}

func (cs *wsConns) of(by func() map[string]connSet, key string) []*wsConn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return by()[key].list()
}

// ofUser returns the connections acting for user.
func (cs *wsConns) ofUser(user string) []*wsConn {
	return cs.of(func() map[string]connSet { return cs.byUser }, user)
}

// ofToken returns the connections authenticated with token id.
func (cs *wsConns) ofToken(id string) []*wsConn {
	return cs.of(func() map[string]connSet { return cs.byToken }, id)
}

func (cs *wsConns) all() []*wsConn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]*wsConn, 0, len(cs.m))
	for c := range cs.m {
		out = append(out, c)
	}
	return out
}

func (cs *wsConns) len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.m)
}

func (s *Server) closeWebSockets() {
	cs := s.conns
	cs.mu.Lock()
	cs.closed = true
	all := make([]*wsConn, 0, len(cs.m))
	for c := range cs.m {
		all = append(all, c)
	}
	cs.mu.Unlock()
	for _, c := range all {
		c.close(protocol.CloseGoingAway)
	}
}

// wsCredential finds the token of a WebSocket handshake: the Authorization
// header, a "bearer.<token>" subprotocol (browsers cannot set headers), or
// the ?token= query parameter (least safe: URLs end up in logs).
func wsCredential(r *http.Request) string {
	if t := bearer(r); t != "" {
		return t
	}
	if t, ok := protocol.TokenFromSubprotocols(offeredSubprotocols(r)); ok {
		return t
	}
	return r.URL.Query().Get("token")
}

func offeredSubprotocols(r *http.Request) []string {
	var offered []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			offered = append(offered, strings.TrimSpace(p))
		}
	}
	return offered
}

// sessionOpenWait bounds the write of a new connection's session: as long
// as protocol/client waits for a hello.
const sessionOpenWait = 30 * time.Second

// serveWS authenticates, upgrades and runs one WebSocket session.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.isReady.Load() {
		s.writeError(w, r, ErrNotReady)
		return
	}
	if err := s.unavailable(); err != nil {
		s.writeError(w, r, fmt.Errorf("%w: %w", errUnavailable, err))
		return
	}
	// The token's check (JSON decoding by reflection) runs deeper than the
	// rest of a handshake: on a worker, whose stack has grown already, it
	// spares each new connection's goroutine growing its stack for it.
	var (
		p   Principal
		err error
	)
	s.ops.do(make(chan struct{}, 1), func() { p, err = s.auth.authenticate(r.Context(), wsCredential(r)) })
	if err != nil {
		s.metrics.authFailures.WithLabelValues("websocket").Inc()
		s.writeError(w, r, err)
		return
	}
	observer, ok := wsAdmits(p)
	if !ok {
		s.writeError(w, r, &apiError{http.StatusForbidden, codeForbidden, errWSCredential})
		return
	}
	if !slices.Contains(offeredSubprotocols(r), protocol.Subprotocol) {
		s.writeError(w, r, badRequest("the WebSocket subprotocol %s is required", protocol.Subprotocol))
		return
	}
	patterns, anyOrigin := wsaccept.OriginPatterns(s.cfg.AllowedOrigins)
	sock := new(wsaccept.Socket)
	// The 101 leaves with the hello (the server speaks first here).
	c, err := websocket.Accept(wsaccept.SmallBuffers{ResponseWriter: w, Socket: sock, HoldUpgrade: true, Polled: s.poller != nil}, r, &websocket.AcceptOptions{
		Subprotocols:       []string{protocol.Subprotocol},
		OriginPatterns:     patterns,
		InsecureSkipVerify: anyOrigin,
		CompressionMode:    websocket.CompressionDisabled,
		// The pinger's pings are answered here (see pinger).
		OnPongReceived: func(context.Context, []byte) { sock.OnPong() },
	})
	if err != nil {
		return // Accept has answered the client
	}
	c.SetReadLimit(s.cfg.Limits.MaxFrameBytes)
	var sess *presence.Session
	if !observer {
		q := r.URL.Query()
		// The session waits out an election of the store's leader; the
		// bundled client waits as long for its hello.
		ctx, cancel := context.WithTimeout(r.Context(), sessionOpenWait)
		sess, err = s.engine.Connect(ctx, presence.SessionInfo{
			User: p.UserID, Device: clip(q.Get("device"), 64), Client: clip(q.Get("client"), 64),
		})
		cancel()
		if h := testHookSessionStored.Load(); err == nil && h != nil {
			(*h)(p.UserID)
		}
		if err != nil {
			s.log.Warn("session not created", zap.Error(err))
			if storeUnavailable(err) || s.unavailable() != nil {
				// The client comes back, here or elsewhere, as after any
				// loss of the store.
				_ = c.Close(protocol.CloseUnavailable, protocol.CloseText(protocol.CloseUnavailable))
				return
			}
			_ = c.Close(websocket.StatusInternalError, "session not created")
			return
		}
	}
	wc := &wsConn{
		s:          s,
		c:          c,
		sock:       sock,
		p:          p,
		sess:       sess,
		limiter:    rate.NewLimiter(rate.Limit(s.cfg.Limits.OpsPerSecond), int(2*s.cfg.Limits.OpsPerSecond)),
		subLimiter: rate.NewLimiter(rate.Limit(s.cfg.Limits.OpsPerSecond), s.cfg.Limits.MaxSubscriptions),
	}
	wc.lastRead.Store(time.Now().UnixNano())
	wc.sub = s.engine.NewSubscriber(presence.SubscriberConfig{
		Queue: s.cfg.Limits.WriteQueue,
		Ready: func() { s.writers.schedule(wc) },
	})
	if !s.conns.add(wc) {
		wc.cleanup()
		_ = c.Close(protocol.CloseGoingAway, protocol.CloseText(protocol.CloseGoingAway))
		return
	}
	s.metrics.connections.Inc()
	// A credential revoked, or a user deleted, since the check above found
	// no connection to close: the session's write can wait out an election
	// of the store's leader, for seconds. A revocation applied from now on
	// finds this connection; one applied before, the check again finds.
	if err := s.stillValid(r.Context(), wsCredential(r)); err != nil {
		s.log.Info("a WebSocket's credential stopped being valid while its session was stored", zap.Error(err))
		code := protocol.CloseUnauthorized
		if errors.Is(err, membership.ErrTokenExpired) {
			code = protocol.CloseTokenExpired
		}
		wc.cleanup()
		_ = c.Close(websocket.StatusCode(code), protocol.CloseText(code))
		return
	}
	// The client hears hello as soon as its session is stored, before its
	// own online change goes out to its groups (which takes long in a
	// group of 10,000) and without waiting for a pooled goroutine.
	wc.armExpiry()
	hello := protocol.AppendHello(nil, protocol.Hello{
		Session: wc.sessionID(), User: wc.p.UserID, Node: s.cfg.NodeName, Expires: unixOrZero(wc.p.Expires),
	})
	if err := wc.write(r.Context(), hello); err != nil {
		wc.cleanup()
		_ = c.CloseNow()
		return
	}
	// The handler returns and its goroutine, with net/http's frames and
	// buffers, goes away; the connection lives on in one small reader.
	go wc.run()
}

// stillValid checks an accepted credential again: nil unless it is known
// to be revoked, expired, or its user deleted or deactivated. A store that
// cannot tell now is no reason to drop a connection it has just admitted:
// the change, once the store applies it, finds the connection registered.
func (s *Server) stillValid(ctx context.Context, credential string) error {
	_, err := s.auth.authenticate(ctx, credential)
	if errors.Is(err, membership.ErrUnauthorized) || errors.Is(err, membership.ErrTokenExpired) {
		return err
	}
	return nil
}

// testHookSessionStored, set by tests only, runs once a new WebSocket's
// session is stored, before the connection is registered.
var testHookSessionStored atomic.Pointer[func(user string)]

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// wsConn is one WebSocket session. A worker reads it and answers its ops
// when the server's poller says it has something to read (see poll);
// where it cannot be polled, a goroutine of its own reads it and the op
// pool answers its ops. Batches are written by the server's writer pool
// when the subscriber signals them, and the server's pinger checks idle
// connections.
type wsConn struct {
	s          *Server
	c          *websocket.Conn
	sock       *wsaccept.Socket // under c: write deadlines, a frame in one write
	sess       *presence.Session
	sub        *presence.Subscriber
	limiter    *rate.Limiter // ops other than subscribe
	subLimiter *rate.Limiter // subscribes: a burst of up to MaxSubscriptions
	done       chan struct{} // a reader goroutine's wait for its ops (see opPool), made by readToEnd

	queued   atomic.Bool  // waiting for a writer
	flushMu  sync.Mutex   // held by the writer draining this connection
	lastRead atomic.Int64 // unix nanoseconds of the last frame read
	pinged   atomic.Int64 // unix nanoseconds of the pinger's last ping, or 0 (only the pinger writes it)

	// An idle connection is read without a goroutine of its own when the
	// server has a poller (see poll): watch tells when it has something
	// to read, and reading is one of the read states below.
	watch     *netpoll.Watch
	reading   atomic.Int32
	closeDone atomic.Bool // the server's close of the connection returned

	// wmu serialises frames so that a subscription's snapshot reaches the
	// client before any delta of that group. It is held while writing one
	// frame, never while waiting for the queue.
	wmu sync.Mutex

	mu sync.Mutex
	// mu guards the following fields.
	p          Principal         // replaced by refresh
	groups     presence.GroupSet // subscribed group → counts only
	counts     []string          // the groups of the count watch (watch_counts)
	countsAll  bool              // the count watch covers every group (admins, observers)
	expiry     *time.Timer
	closing    bool
	violations int
}

const writeTimeout = 10 * time.Second

func (wc *wsConn) run() {
	// Ops run one at a time and are over before the connection is: they
	// need no context of its own. One would keep, for the connection's
	// life, the children map and Done channel of the first op (or WaitRev)
	// that derived a deadline from it: about 400 bytes per idle connection.
	ctx := context.Background()
	if wc.sess != nil {
		// The session is stored; it must be visible here before the
		// client's first op, so that its first snapshot counts the user.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := wc.s.engine.WaitRev(wctx, wc.sess.Rev()); err != nil {
			wc.s.log.Warn("session not applied", zap.Error(err))
		}
		cancel()
	}
	if wc.poll() {
		return // the reader goroutine goes; the poller calls for a reader
	}
	wc.readToEnd()
}

// readToEnd reads the connection on the calling goroutine until it ends.
func (wc *wsConn) readToEnd() {
	// coder/websocket does not close the socket when a read fails: without
	// this, a client that went away keeps its file descriptor until the
	// garbage collector finds the connection.
	defer func() { _ = wc.c.CloseNow() }()
	// Only a connection read by a goroutine of its own needs it; a polled
	// one runs its ops on the worker that reads it.
	wc.done = make(chan struct{}, 1)
	wc.readLoop(context.Background())
	wc.s.ops.do(wc.done, wc.cleanup)
}

// The read states of a polled connection. A connection is first (and for
// good, when it falls back to a reader goroutine) readOwned.
const (
	readOwned int32 = iota // a goroutine reads it, or is about to
	readIdle               // nothing reads it: the watch is armed
	readEnded              // it is over and cleaned up
)

// poll hands the connection, once its reader has nothing left to do, to
// the server's poller: until the client sends something, no goroutine
// (and no goroutine stack, 4 KiB with the library's read path) waits on
// it. It reports false when the connection must keep a reader goroutine:
// no poller, TLS, or bytes read ahead at the handshake.
func (wc *wsConn) poll() bool {
	if wc.s.poller == nil || !wc.sock.Pollable() {
		return false
	}
	w, err := wc.s.poller.Watch(wc.sock.RawConn(), wc.readable)
	if err != nil {
		return false
	}
	wc.watch = w
	wc.idle()
	return true
}

// readable runs on the poller's goroutine when an idle connection has
// something to read: a round of reads starts on a worker.
func (wc *wsConn) readable() {
	if wc.reading.CompareAndSwap(readIdle, readOwned) {
		wc.s.ops.spawn(wc.round)
	}
}

// round reads what the client has sent: every whole message there is, and
// then the connection is idle again. A message still arriving is waited
// for on a goroutine of its own, not a worker's.
func (wc *wsConn) round() {
	if wc.isClosing() {
		wc.leaveToClose()
		return
	}
	kind, budget, arrived := wc.sock.Peek()
	switch {
	case kind == wsaccept.Nothing:
		wc.idle()
	case kind == wsaccept.Ended:
		wc.end() // as a reader would after its read failed
	case kind == wsaccept.Partial:
		// A header cut short: the rest of its TCP segment is on its way.
		go func() {
			switch err := wc.sock.WaitMore(); {
			case errors.Is(err, wsaccept.ErrPeerClosed):
				// Read what there is, as a reader would, to the end.
				wc.watch.Stop()
				wc.readToEnd()
			case err != nil:
				wc.end() // the socket was closed
			default:
				wc.round()
			}
		}()
	case kind == wsaccept.Unknown:
		// A fragmented message, a header the library refuses: a reader
		// goroutine of its own reads the connection to its end, as
		// without a poller.
		wc.watch.Stop()
		go wc.readToEnd()
	case !arrived:
		go wc.readMessages(budget)
	default:
		wc.readMessages(budget)
	}
}

// readMessages reads and answers messages until budget bytes, which end at
// a message boundary, are read; then the connection is idle again.
func (wc *wsConn) readMessages(budget int64) {
	ctx := context.Background()
	wc.sock.SetBudget(budget)
	for {
		if wc.isClosing() {
			wc.leaveToClose()
			return
		}
		typ, data, err := wc.c.Read(ctx)
		if errors.Is(err, wsaccept.ErrWouldBlock) {
			break
		}
		if err != nil {
			wc.readFailed(err)
			wc.end()
			return
		}
		if !wc.op(ctx, typ, data) {
			wc.end()
			return
		}
	}
	wc.idle()
}

// idle arms the watch of a connection its round is done with.
func (wc *wsConn) idle() {
	// Others read without a budget (the library's close handshake).
	wc.sock.SetBudget(-1)
	wc.reading.Store(readIdle)
	err := wc.watch.Arm()
	switch {
	case err == nil:
	case errors.Is(err, netpoll.ErrClosed) && wc.reading.CompareAndSwap(readIdle, readOwned):
		// The poller is gone (a node stopping, a poller that failed): a
		// reader goroutine takes the connection over.
		go wc.readToEnd()
	case wc.reading.CompareAndSwap(readIdle, readEnded):
		wc.finish() // closed before it could be armed again
	}
}

// leaveToClose stops reading a connection the server is closing: the
// library's close handshake reads what the client sends now, and the
// closer cleans up once it is done (closed).
func (wc *wsConn) leaveToClose() {
	wc.sock.SetBudget(-1)
	wc.reading.Store(readIdle)
	if wc.closeDone.Load() && wc.reading.CompareAndSwap(readIdle, readEnded) {
		wc.finish()
	}
}

// end cleans up a connection its round found over.
func (wc *wsConn) end() {
	wc.sock.SetBudget(-1)
	wc.reading.Store(readEnded)
	wc.finish()
}

// closed runs once the server has closed the connection: an idle one is
// cleaned up here, since no round will come to find it closed.
func (wc *wsConn) closed() {
	wc.closeDone.Store(true)
	if wc.reading.CompareAndSwap(readIdle, readEnded) {
		wc.finish()
	}
}

// finish ends the session, then drops the socket, unless the server is
// closing it: its close frame (a protocol error, a rate limit) must leave
// first, and the closer closes the socket after it.
func (wc *wsConn) finish() {
	if wc.watch != nil {
		wc.watch.Stop()
	}
	wc.cleanup()
	if !wc.isClosing() {
		_ = wc.c.CloseNow()
	}
}

// isClosing reports whether the server has begun to close the connection.
func (wc *wsConn) isClosing() bool {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return wc.closing
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// cleanup ends the session: the user's presence enters its grace period.
func (wc *wsConn) cleanup() {
	wc.mu.Lock()
	if wc.expiry != nil {
		wc.expiry.Stop()
	}
	wc.mu.Unlock()
	wc.sub.Close()
	if wc.sess != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := wc.sess.Close(ctx); err != nil && !errors.Is(err, presence.ErrClosed) {
			wc.s.log.Debug("session close", zap.Error(err))
		}
	}
	wc.s.conns.remove(wc)
	wc.s.metrics.connections.Dec()
}

// close closes the WebSocket with a protocol close code, once; it reports
// whether this call closed it.
func (wc *wsConn) close(code int) bool {
	wc.mu.Lock()
	if wc.closing {
		wc.mu.Unlock()
		return false
	}
	wc.closing = true
	wc.mu.Unlock()
	wc.s.metrics.wsCloses.WithLabelValues(strconv.Itoa(code), "server").Inc()
	go func() {
		_ = wc.c.Close(websocket.StatusCode(code), protocol.CloseText(code))
		wc.closed()
	}()
	return true
}

// armExpiry closes the connection when its credential expires, unless a
// refresh op replaced it first.
func (wc *wsConn) armExpiry() {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.expiry != nil {
		wc.expiry.Stop()
		wc.expiry = nil
	}
	if wc.p.Expires.IsZero() {
		return
	}
	wc.expiry = time.AfterFunc(time.Until(wc.p.Expires), func() { wc.close(protocol.CloseTokenExpired) })
}

func (wc *wsConn) write(ctx context.Context, frame []byte) error {
	wc.wmu.Lock()
	defer wc.wmu.Unlock()
	return wc.writeLocked(ctx, frame)
}

// batchFrame returns the frame of a batch, shared with every other
// subscriber of the group, or nil for a group the client has since left.
// A frame of the connection's own (a merged batch, a reset's snapshot) is
// pooled: the caller gives it back to frameBufs once written.
func (wc *wsConn) batchFrame(b presence.Batch) (frame []byte, pooled bool) {
	// A batch queued before the connection lost the group (recheckAccess)
	// is not written after it: the connection's own state says what it
	// still subscribes to and counts.
	wc.mu.Lock()
	_, subscribed := wc.groups.Get(b.Group)
	counted := b.CountsOnly && (wc.countsAll || slices.Contains(wc.counts, b.Group))
	wc.mu.Unlock()
	if !subscribed && !counted {
		return nil, false
	}
	switch {
	case b.Reset != nil:
		// The store was loaded again under a new epoch: a fresh snapshot,
		// pushed without id, replaces what the client knows.
		snap := *b.Reset
		return wc.s.appendSnapshot(wc.s.frameBufs.get(snapshotSize(b.Group, snap)), 0, b.Group, snap), true
	case b.Merged:
		// The connection's own batch: it may have the revision and size
		// of the group's shared batch, and no one else will ask for it.
		return appendBatch(wc.s.frameBufs.get(batchSize(b)), b), true
	}
	return wc.s.frames.frame(b), false
}

func memberOf(d presence.Delta) protocol.Member {
	m := protocol.Member{User: d.User, Status: d.Status, Text: d.Text, Rev: d.Rev, Removed: d.Removed}
	if !d.Since.IsZero() {
		m.Since = d.Since.UnixMilli()
	}
	return m
}

// readLoop reads frames and hands each to the op pool (see opPool), until
// the connection fails or an op ends it.
func (wc *wsConn) readLoop(ctx context.Context) {
	for {
		// Reads take no context: the connection's close ends a read, and
		// a cancelable context would cost every idle connection the
		// library's AfterFunc registration and a Done channel.
		typ, data, err := wc.c.Read(context.Background())
		if err != nil {
			wc.readFailed(err)
			return
		}
		more := false
		wc.s.ops.do(wc.done, func() { more = wc.op(ctx, typ, data) })
		if !more {
			return
		}
	}
}

// readFailed counts the client's close, or closes a connection whose
// client sent too much.
func (wc *wsConn) readFailed(err error) {
	if code := websocket.CloseStatus(err); code != -1 {
		wc.s.metrics.wsCloses.WithLabelValues(strconv.Itoa(int(code)), "client").Inc()
	}
	if websocket.CloseStatus(err) == -1 && errors.Is(err, websocket.ErrMessageTooBig) {
		wc.close(protocol.CloseFrameTooBig)
	}
}

// op answers one frame read from the client; false ends the connection.
func (wc *wsConn) op(ctx context.Context, typ websocket.MessageType, data []byte) bool {
	if wc.sess != nil {
		wc.sess.Touch()
	}
	wc.lastRead.Store(time.Now().UnixNano())
	if typ != websocket.MessageText {
		wc.close(protocol.CloseProtocolError)
		return false
	}
	f, err := protocol.DecodeClientFrame(data)
	// Subscribes have a bucket of their own, as large as the subscription
	// limit: a client that restores every subscription at once after a
	// reconnect sends them in a burst, which the other ops' bucket would
	// answer with rate_limited and, soon, a cut connection.
	limiter := wc.limiter
	if err == nil && f.Op == protocol.OpSubscribe {
		limiter = wc.subLimiter
	}
	if !limiter.Allow() {
		wc.s.metrics.rateLimited.WithLabelValues("websocket").Inc()
		wc.mu.Lock()
		wc.violations++
		v := wc.violations
		wc.mu.Unlock()
		if v > 20 {
			wc.close(protocol.CloseRateLimited)
			return false
		}
		return wc.write(ctx, protocol.AppendError(nil, f.ID, protocol.CodeRateLimited, "too many ops, slow down")) == nil
	}
	if err != nil {
		return wc.write(ctx, protocol.AppendError(nil, f.ID, protocol.CodeOf(err), err.Error())) == nil
	}
	return wc.handle(ctx, f) == nil
}

// handle runs one op and writes its reply. It returns an error only when
// the connection is unusable.
func (wc *wsConn) handle(ctx context.Context, f protocol.ClientFrame) error {
	reply := func(frame []byte) error { return wc.write(ctx, frame) }
	fail := func(code protocol.ErrorCode, msg string) error {
		return reply(protocol.AppendError(nil, f.ID, code, msg))
	}
	switch f.Op {
	case protocol.OpPing:
		return reply(protocol.AppendPong(nil, f.ID))
	case protocol.OpSubscribe:
		return wc.subscribe(ctx, f)
	case protocol.OpUnsubscribe:
		wc.mu.Lock()
		_, ok := wc.groups.Get(f.Group)
		wc.groups.Delete(f.Group)
		wc.mu.Unlock()
		if !ok {
			return fail(protocol.CodeNotFound, "not subscribed to "+f.Group)
		}
		wc.sub.Unsubscribe(f.Group)
		return reply(protocol.AppendOK(nil, f.ID))
	case protocol.OpSetStatus:
		if wc.observer() {
			return fail(protocol.CodeForbidden, "an observer connection has no status")
		}
		m := presence.Manual{Status: f.Status, Text: f.Text}
		if f.Status == "" { // text only: keep the manual status there is
			if cur, ok := wc.s.engine.ManualOf(wc.userID()); ok {
				m.Status, m.Expires = cur.Status, cur.Expires
			}
		}
		if f.ExpiresIn > 0 {
			m.Expires = time.Now().Add(time.Duration(f.ExpiresIn) * time.Second)
		}
		if err := wc.s.engine.SetManual(ctx, wc.userID(), m); err != nil {
			switch {
			case errors.Is(err, presence.ErrInvalid):
				return fail(protocol.CodeBadRequest, err.Error())
			case storeUnavailable(err) || errors.Is(err, context.DeadlineExceeded):
				return fail(protocol.CodeUnavailable, "the presence store is unavailable, retry")
			}
			wc.s.log.Warn("set_status failed", zap.Error(err))
			return fail(protocol.CodeInternal, "status not stored")
		}
		return reply(protocol.AppendOK(nil, f.ID))
	case protocol.OpQuery:
		return reply(protocol.AppendStatuses(nil, f.ID, wc.query(f.Users)))
	case protocol.OpWatchCounts:
		groups, ok := wc.visibleGroups(f.Groups)
		if !ok {
			return fail(protocol.CodeForbidden, "not a member of every group asked for")
		}
		if testHookMayWatch != nil {
			testHookMayWatch()
		}
		// No writer runs from here until the reply is written and the
		// authority asked again (see below): the reply precedes every
		// push of these counts.
		wc.flushMu.Lock()
		defer wc.flushMu.Unlock()
		// Counted before the watch starts: flush writes the counts of
		// groups the connection counts (see batchFrame).
		wc.mu.Lock()
		prev, prevAll := slices.Clone(wc.counts), wc.countsAll
		if groups == nil {
			wc.countsAll = true
		}
		wc.counts = append(wc.counts, groups...)
		wc.mu.Unlock()
		counts, err := wc.sub.WatchCounts(groups)
		if err != nil {
			wc.mu.Lock()
			wc.counts, wc.countsAll = prev, prevAll
			wc.mu.Unlock()
			return fail(protocol.CodeBadRequest, err.Error())
		}
		out := make([]protocol.GroupCount, len(counts))
		for i, c := range counts {
			out[i] = protocol.GroupCount{Group: c.Group, Online: c.Online, Total: c.Total, Rev: c.Rev}
		}
		if err := wc.write(ctx, protocol.AppendCounts(nil, f.ID, out)); err != nil {
			return err
		}
		// Asked again now that the watch is recorded, before any push: a
		// removal applied since visibleGroups found no watch to end, and
		// one applied from now on finds it.
		wc.recheckAccessLocked()
		return nil
	case protocol.OpUnwatchCounts:
		wc.sub.UnwatchCounts()
		wc.mu.Lock()
		wc.counts, wc.countsAll = nil, false
		wc.mu.Unlock()
		return reply(protocol.AppendOK(nil, f.ID))
	case protocol.OpRefresh:
		p, err := wc.s.auth.authenticate(ctx, f.Token)
		if err != nil {
			return fail(protocol.CodeUnauthorized, "token not accepted")
		}
		observer, ok := wsAdmits(p)
		switch {
		case !ok:
			return fail(protocol.CodeForbidden, errWSCredential)
		case p.UserID != wc.userID() || observer != wc.observer():
			return fail(protocol.CodeForbidden, "token is for another user")
		}
		wc.s.conns.setPrincipal(wc, p)
		wc.armExpiry()
		return reply(protocol.AppendOK(nil, f.ID))
	default:
		return fail(protocol.CodeUnknownOp, "unknown op")
	}
}

// writeLocked writes one frame; the caller holds wmu.
func (wc *wsConn) writeLocked(ctx context.Context, frame []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := wc.sock.WriteFrame(wc.c, frame, writeTimeout)
	if err == nil {
		wc.s.metrics.framesOut.Inc()
	}
	return err
}

func (wc *wsConn) sessionID() string {
	if wc.sess == nil {
		return ""
	}
	return wc.sess.ID()
}

// wsAdmits is the rule for the credential of a WebSocket, at its opening
// and at every refresh: a user token with connect opens a presence
// session; a service token with presence:read an observer connection
// (dashboards, backends: no session, and every group is visible).
func wsAdmits(p Principal) (observer, ok bool) {
	if p.UserID == "" {
		return true, p.Allows(membership.ScopePresenceRead)
	}
	return false, p.Allows(membership.ScopeConnect)
}

const errWSCredential = "a WebSocket needs a user token with the connect scope or a service token with presence:read"

// observer reports whether the connection is a service observer.
func (wc *wsConn) observer() bool { return wc.sess == nil }

func (wc *wsConn) userID() string {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return wc.p.UserID
}

// mayWatch reports whether the caller may see group (the authority rule:
// members, admins, observers). Callers that may not get the same answer
// whether the group exists or not.
func (wc *wsConn) mayWatch(group string) bool {
	return wc.s.authority.CanWatchGroup(wc.userID(), group)
}

// seesEveryGroup reports an observer or an admin.
func (wc *wsConn) seesEveryGroup() bool {
	return wc.observer() || wc.s.authority.IsAdmin(wc.userID())
}

// visibleGroups resolves the groups of a counts watch: the asked ones if
// all are visible, else every group the caller may see.
func (wc *wsConn) visibleGroups(asked []string) ([]string, bool) {
	if len(asked) > 0 {
		for _, g := range asked {
			if !wc.mayWatch(g) {
				return nil, false
			}
		}
		return asked, true
	}
	if wc.seesEveryGroup() {
		return nil, true // nil: every group
	}
	ms := wc.s.store.Index().GroupsOf(wc.userID())
	groups := make([]string, len(ms))
	for i, m := range ms {
		groups[i] = m.GroupID
	}
	return groups, true
}

func (wc *wsConn) subscribe(ctx context.Context, f protocol.ClientFrame) error {
	if !wc.mayWatch(f.Group) {
		return wc.write(ctx, protocol.AppendError(nil, f.ID, protocol.CodeForbidden, "not a member of this group"))
	}
	if testHookMayWatch != nil {
		testHookMayWatch()
	}
	wc.mu.Lock()
	_, already := wc.groups.Get(f.Group)
	full := !already && wc.groups.Len() >= wc.s.cfg.Limits.MaxSubscriptions
	wc.mu.Unlock()
	if full {
		return wc.write(ctx, protocol.AppendError(nil, f.ID, protocol.CodeTooManySubscriptions, "subscription limit reached"))
	}
	// Hold the writers off (flushMu) and the write lock from registration
	// until the initial frame is written: no delta of the group can
	// overtake it, nor follow a refusal of it (see below).
	wc.flushMu.Lock()
	defer wc.flushMu.Unlock()
	wc.wmu.Lock()
	defer wc.wmu.Unlock()
	// The group is recorded before it is registered: the writer drops
	// batches of groups the connection does not have, and one may be
	// queued the moment the registration is made.
	wc.mu.Lock()
	prevCounts, had := wc.groups.Get(f.Group)
	wc.groups.Set(f.Group, f.CountsOnly)
	wc.mu.Unlock()
	opts := presence.SubscribeOptions{CountsOnly: f.CountsOnly, FromRev: f.Rev, Epoch: f.Epoch}
	if f.Rev > 0 {
		opts.Visible = wc.s.authority.UserFilter(wc.userID())
	}
	init, err := wc.sub.Subscribe(f.Group, opts)
	if err == nil && testHookSubscribed != nil {
		testHookSubscribed()
	}
	if err != nil {
		wc.mu.Lock()
		if had {
			wc.groups.Set(f.Group, prevCounts)
		} else {
			wc.groups.Delete(f.Group)
		}
		wc.mu.Unlock()
		code := protocol.CodeInternal
		if storeUnavailable(err) {
			code = protocol.CodeUnavailable // loading the store again
		}
		return wc.writeLocked(ctx, protocol.AppendError(nil, f.ID, code, "subscription failed: "+err.Error()))
	}
	// Asked again now that the subscription is recorded and registered: a
	// removal applied since the first check found nothing to revoke
	// (recheckAccess), and one applied from now on finds it.
	if !wc.mayWatch(f.Group) {
		wc.sub.Unsubscribe(f.Group)
		wc.mu.Lock()
		wc.groups.Delete(f.Group)
		wc.mu.Unlock()
		return wc.writeLocked(ctx, protocol.AppendError(nil, f.ID, protocol.CodeForbidden, "not a member of this group"))
	}
	wc.s.metrics.subscriptions.Inc()
	if snap, ok := init.(presence.Snapshot); ok && f.CountsOnly {
		return wc.writeLocked(ctx, protocol.AppendCounts(nil, f.ID, []protocol.GroupCount{
			{Group: f.Group, Online: snap.Online, Total: snap.Total, Rev: snap.Rev}}))
	}
	// The frame is written at once and dropped: its buffer is used again
	// by the next subscription (a storm of them would otherwise allocate
	// a snapshot per subscriber).
	frame := wc.s.appendInitial(wc.s.frameBufs.get(initialSize(f.Group, init)), f.ID, f.Group, init)
	err = wc.writeLocked(ctx, frame)
	wc.s.frameBufs.put(frame)
	return err
}

// testHookSubscribed, set by tests only, runs right after a subscription
// is registered with the engine, before its first frame is written.
var testHookSubscribed func()

// testHookMayWatch, set by tests only, runs when a subscribe's first check
// of the authority passed.
var testHookMayWatch func()

// appendInitial appends a subscription's first frame to dst: a snapshot,
// or the changes a resuming client missed.
func (s *Server) appendInitial(dst []byte, id uint64, group string, init presence.Initial) []byte {
	switch r := init.(type) {
	case presence.Resumed:
		changes := make([]protocol.Member, len(r.Changes))
		for i, d := range r.Changes {
			changes[i] = memberOf(d)
		}
		return protocol.AppendResumed(dst, protocol.Resumed{ID: id, Group: group, Rev: r.Rev, Epoch: r.Epoch,
			Online: r.Online, Total: r.Total, Changes: changes})
	case presence.Snapshot:
		return s.appendSnapshot(dst, id, group, r)
	}
	return protocol.AppendError(dst, id, protocol.CodeInternal, "unexpected subscription start")
}

// initialSize is about the size of appendInitial's frame.
func initialSize(group string, init presence.Initial) int {
	switch r := init.(type) {
	case presence.Resumed:
		n := 160 + len(group) + len(r.Epoch)
		for i := range r.Changes {
			n += memberSize + len(r.Changes[i].User) + len(r.Changes[i].Text)
		}
		return n
	case presence.Snapshot:
		return snapshotSize(group, r)
	}
	return 256
}

// query answers the status of users; those the caller may not see (the
// authority's visibility rule) read as offline.
func (wc *wsConn) query(users []string) []protocol.Member {
	visible := wc.s.authority.UserFilter(wc.userID())
	out := make([]protocol.Member, 0, len(users))
	for _, us := range wc.s.engine.Statuses(users) {
		m := protocol.Member{User: us.User, Status: protocol.StatusOffline}
		if visible(us.User) {
			m.Status, m.Text = us.Status, us.Text
			if !us.Since.IsZero() {
				m.Since = us.Since.UnixMilli()
			}
			if !us.LastSeen.IsZero() && us.Status == protocol.StatusOffline {
				m.LastSeen = us.LastSeen.UnixMilli()
			}
		}
		out = append(out, m)
	}
	return out
}
