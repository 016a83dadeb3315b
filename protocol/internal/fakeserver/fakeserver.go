// Package fakeserver is a small presence server speaking protocol v1 over
// real WebSockets, for the tests of the Go and JavaScript clients before and
// apart from the broker.
//
// It holds groups and members in memory, numbers every change with a global
// revision, answers every client op, pushes deltas and counts, honours
// resume from a revision when it can and sends a fresh snapshot when it
// cannot. Tests drive it: Change, Disconnect (with changes made while the
// clients are away), NewEpoch, ForgetHistory, EndSubscription, HoldReplies.
package fakeserver

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/protocol"
)

// Config tunes a Server. The zero value accepts every connection.
type Config struct {
	// Tokens maps accepted tokens to their user. Empty: no authentication,
	// every connection is user "anon".
	Tokens map[string]string
	// Forbidden groups answer subscribe with forbidden.
	Forbidden []string
	// Epoch is the initial epoch (default "e1").
	Epoch string
	// Node is the node name in hello (default "fake").
	Node string
	// Expires is the hello expires field.
	Expires int64
	// WriteQueue is the per-connection queue of frames (default 1024).
	WriteQueue int
}

// Handshake records what a client sent when it connected.
type Handshake struct {
	Token        string // from any of the three places
	TokenVia     string // "header", "subprotocol" or "query"
	Subprotocols []string
	Device       string
	Client       string
}

// Server is a running fake presence server.
type Server struct {
	cfg  Config
	http *httptest.Server
	wg   sync.WaitGroup // connection handlers

	mu sync.Mutex
	// mu guards the following fields.
	rev        uint64
	epoch      string
	floor      uint64 // resume is honoured from revisions >= floor
	groups     map[string]*group
	conns      map[*conn]struct{}
	handshakes []Handshake
	received   []protocol.ClientFrame
	receivedCh chan struct{} // closed and renewed on every received frame
	hold       int           // replies still to hold
	held       [][]byte      // held replies, sent in reverse order
	heldConn   *conn
	sessions   int
	closed     bool
}

type group struct {
	members map[string]protocol.Member
	history []protocol.Member // changes with rev > floor, in order
}

func (g *group) counts(name string, rev uint64) protocol.GroupCount {
	c := protocol.GroupCount{Group: name, Total: len(g.members), Rev: rev}
	for _, m := range g.members {
		if m.Status.Online() {
			c.Online++
		}
	}
	return c
}

func (g *group) sorted() []protocol.Member {
	return slices.SortedFunc(maps.Values(g.members), func(a, b protocol.Member) int {
		return strings.Compare(a.User, b.User)
	})
}

type conn struct {
	ws   *websocket.Conn
	user string
	out  chan []byte
	// quit asks the writer to close with a code (0: abruptly).
	quit     chan int
	quitOnce sync.Once

	// Guarded by Server.mu.
	subs   map[string]bool // group → counts only
	watch  bool
	wgroup map[string]bool // watched groups; nil with watch: all
}

// Start runs a server on 127.0.0.1 and stops it in t.Cleanup.
func Start(t testing.TB, cfg Config) *Server {
	if cfg.Epoch == "" {
		cfg.Epoch = "e1"
	}
	if cfg.Node == "" {
		cfg.Node = "fake"
	}
	if cfg.WriteQueue == 0 {
		cfg.WriteQueue = 1024
	}
	s := &Server{cfg: cfg, epoch: cfg.Epoch, groups: map[string]*group{}, conns: map[*conn]struct{}{},
		receivedCh: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	s.http = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// URL is the WebSocket URL of the server.
func (s *Server) URL() string { return "ws" + strings.TrimPrefix(s.http.URL, "http") + "/v1/ws" }

// Close disconnects every client and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.stop(0)
	}
	s.mu.Unlock()
	s.http.Close()
	s.wg.Wait()
}

// Change applies a change of member m in group, creating the group if
// needed, numbers it with the next revision and pushes it to subscribers.
// m.Removed removes the member. It returns the revision.
func (s *Server) Change(group string, m protocol.Member) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changeLocked(group, m)
}

// CreateGroup makes an empty group.
func (s *Server) CreateGroup(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupLocked(name)
}

func (s *Server) groupLocked(name string) *group {
	g := s.groups[name]
	if g == nil {
		g = &group{members: map[string]protocol.Member{}}
		s.groups[name] = g
	}
	return g
}

func (s *Server) changeLocked(name string, m protocol.Member) uint64 {
	g := s.groupLocked(name)
	s.rev++
	m.Rev = s.rev
	if m.Removed {
		delete(g.members, m.User)
	} else {
		stored := m
		stored.Rev = 0
		g.members[m.User] = stored
	}
	g.history = append(g.history, m)
	c := g.counts(name, s.rev)
	delta := protocol.AppendDelta(nil, protocol.Delta{Group: name, Rev: s.rev, Online: c.Online, Total: c.Total,
		Changes: []protocol.Member{m}})
	counts := protocol.AppendCounts(nil, 0, []protocol.GroupCount{c})
	for cn := range s.conns {
		countsOnly, subscribed := cn.subs[name]
		switch {
		case subscribed && !countsOnly:
			cn.send(delta)
		case subscribed, cn.watch && (cn.wgroup == nil || cn.wgroup[name]):
			cn.send(counts)
		}
	}
	return s.rev
}

// Disconnect closes every connection, with a close code (0: drop the TCP
// connection without a close frame), then runs whileDown before any client
// can reconnect: the changes it makes are what the clients miss.
func (s *Server) Disconnect(code int, whileDown func(b *Batch)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.stop(code)
		delete(s.conns, c)
	}
	if whileDown != nil {
		whileDown(&Batch{s: s})
	}
}

// Batch makes changes while the server's lock is held.
type Batch struct{ s *Server }

// Change is Server.Change inside a batch.
func (b *Batch) Change(group string, m protocol.Member) uint64 { return b.s.changeLocked(group, m) }

// NewEpoch is Server.NewEpoch inside a batch.
func (b *Batch) NewEpoch(epoch string) {
	b.s.epoch = epoch
	b.s.forgetLocked()
}

// ForgetHistory is Server.ForgetHistory inside a batch.
func (b *Batch) ForgetHistory() { b.s.forgetLocked() }

// NewEpoch starts a new revision space: resumes from older epochs get a
// fresh snapshot.
func (s *Server) NewEpoch(epoch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = epoch
	s.forgetLocked()
}

// ForgetHistory drops the change history: resumes from before now get a
// fresh snapshot.
func (s *Server) ForgetHistory() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked()
}

func (s *Server) forgetLocked() {
	s.floor = s.rev
	for _, g := range s.groups {
		g.history = nil
	}
}

// PushSnapshot starts a new epoch and pushes every subscriber of group a
// fresh snapshot without id, as a server whose store was lost does.
func (s *Server) PushSnapshot(group, epoch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = epoch
	s.forgetLocked()
	g := s.groupLocked(group)
	cnt := g.counts(group, s.rev)
	frame := protocol.AppendSnapshot(nil, protocol.SnapshotHeader{Group: group, Rev: s.rev, Epoch: epoch, Fresh: true,
		Online: cnt.Online, Total: cnt.Total}, g.sorted())
	for c := range s.conns {
		if countsOnly, ok := c.subs[group]; ok && !countsOnly {
			c.send(frame)
		}
	}
}

// EndSubscription ends every subscription to group with an error push.
func (s *Server) EndSubscription(group string, code protocol.ErrorCode, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	frame := protocol.AppendGroupError(nil, group, code, message)
	for c := range s.conns {
		if _, ok := c.subs[group]; ok {
			delete(c.subs, group)
			c.send(frame)
		}
	}
}

// HoldReplies holds the next n replies and then sends them in reverse
// order, to show that clients match replies by id.
func (s *Server) HoldReplies(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = n
}

// Handshakes returns what every connection sent in its handshake.
func (s *Server) Handshakes() []Handshake {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.handshakes)
}

// Received returns every client frame received, in order.
func (s *Server) Received() []protocol.ClientFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// WaitReceived waits until the server has received n client frames in
// total, or ctx ends.
func (s *Server) WaitReceived(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, ch := len(s.received), s.receivedCh
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Members returns the current members of group, sorted by user.
func (s *Server) Members(group string) []protocol.Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		return nil
	}
	return g.sorted()
}

// Connections is the number of open connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	hs := Handshake{
		Subprotocols: r.Header.Values("Sec-WebSocket-Protocol"),
		Device:       r.URL.Query().Get("device"),
		Client:       r.URL.Query().Get("client"),
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		hs.Token, hs.TokenVia = tok, "header"
	} else if tok, ok := protocol.TokenFromSubprotocols(hs.Subprotocols); ok {
		hs.Token, hs.TokenVia = tok, "subprotocol"
	} else if tok := r.URL.Query().Get("token"); tok != "" {
		hs.Token, hs.TokenVia = tok, "query"
	}
	user := "anon"
	if len(s.cfg.Tokens) > 0 {
		u, ok := s.cfg.Tokens[hs.Token]
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		user = u
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "subprotocol "+protocol.Subprotocol+" required")
		return
	}
	c := &conn{ws: ws, user: user, out: make(chan []byte, s.cfg.WriteQueue), quit: make(chan int, 1), subs: map[string]bool{}}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.CloseNow()
		return
	}
	s.handshakes = append(s.handshakes, hs)
	s.sessions++
	c.send(protocol.AppendHello(nil, protocol.Hello{
		Session: "s" + strconv.Itoa(s.sessions), User: user, Node: s.cfg.Node, Expires: s.cfg.Expires,
	}))
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	// The handler returns at once; the connection lives on in two goroutines
	// that Close waits for.
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.write(ctx, c)
		}()
		s.read(ctx, c)
		c.stop(0)
		<-done
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// send queues a frame; a full queue cuts the connection as a slow consumer.
// Callers hold Server.mu, which keeps frames in order.
func (c *conn) send(b []byte) {
	select {
	case c.out <- b:
	default:
		c.stop(protocol.CloseSlowConsumer)
	}
}

func (c *conn) stop(code int) {
	c.quitOnce.Do(func() { c.quit <- code })
}

func (s *Server) write(ctx context.Context, c *conn) {
	for {
		select {
		case b := <-c.out:
			if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
				c.ws.CloseNow()
				return
			}
		case code := <-c.quit:
			if code == 0 {
				c.ws.CloseNow()
			} else {
				c.ws.Close(websocket.StatusCode(code), protocol.CloseText(code))
			}
			return
		}
	}
}

func (s *Server) read(ctx context.Context, c *conn) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.stop(protocol.CloseProtocolError)
			return
		}
		f, err := protocol.DecodeClientFrame(data)
		s.mu.Lock()
		if err != nil {
			s.replyLocked(c, protocol.AppendError(nil, f.ID, protocol.CodeOf(err), err.Error()))
		} else {
			s.received = append(s.received, f)
			close(s.receivedCh)
			s.receivedCh = make(chan struct{})
			s.handleLocked(c, f)
		}
		s.mu.Unlock()
	}
}

// replyLocked sends a reply, or holds it (HoldReplies).
func (s *Server) replyLocked(c *conn, b []byte) {
	if s.hold == 0 {
		c.send(b)
		return
	}
	s.held = append(s.held, b)
	s.heldConn = c
	s.hold--
	if s.hold == 0 {
		for i := len(s.held) - 1; i >= 0; i-- {
			s.heldConn.send(s.held[i])
		}
		s.held, s.heldConn = nil, nil
	}
}

func (s *Server) handleLocked(c *conn, f protocol.ClientFrame) {
	errorf := func(code protocol.ErrorCode, msg string) {
		s.replyLocked(c, protocol.AppendError(nil, f.ID, code, msg))
	}
	switch f.Op {
	case protocol.OpSubscribe:
		if slices.Contains(s.cfg.Forbidden, f.Group) {
			errorf(protocol.CodeForbidden, "not a member of group "+strconv.Quote(f.Group))
			return
		}
		g := s.groups[f.Group]
		if g == nil {
			errorf(protocol.CodeNotFound, "no group "+strconv.Quote(f.Group))
			return
		}
		c.subs[f.Group] = f.CountsOnly
		cnt := g.counts(f.Group, s.rev)
		switch {
		case f.CountsOnly:
			s.replyLocked(c, protocol.AppendCounts(nil, f.ID, []protocol.GroupCount{cnt}))
		case f.Rev != 0 && f.Epoch == s.epoch && f.Rev >= s.floor && f.Rev <= s.rev:
			var missed []protocol.Member
			for _, m := range g.history {
				if m.Rev > f.Rev {
					missed = append(missed, m)
				}
			}
			s.replyLocked(c, protocol.AppendResumed(nil, protocol.Resumed{ID: f.ID, Group: f.Group, Rev: s.rev,
				Epoch: s.epoch, Online: cnt.Online, Total: cnt.Total, Changes: missed}))
		default:
			s.replyLocked(c, protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: f.ID, Group: f.Group, Rev: s.rev,
				Epoch: s.epoch, Fresh: f.Rev != 0, Online: cnt.Online, Total: cnt.Total}, g.sorted()))
		}
	case protocol.OpUnsubscribe:
		if _, ok := c.subs[f.Group]; !ok {
			errorf(protocol.CodeNotFound, "not subscribed to "+strconv.Quote(f.Group))
			return
		}
		delete(c.subs, f.Group)
		s.replyLocked(c, protocol.AppendOK(nil, f.ID))
	case protocol.OpSetStatus:
		s.replyLocked(c, protocol.AppendOK(nil, f.ID))
		for _, name := range slices.Sorted(maps.Keys(s.groups)) {
			m, ok := s.groups[name].members[c.user]
			if !ok {
				continue
			}
			if f.Status != "" {
				m.Status = f.Status
			}
			m.Text = f.Text
			s.changeLocked(name, m)
		}
	case protocol.OpQuery:
		var out []protocol.Member
		for _, u := range f.Users {
			for _, name := range slices.Sorted(maps.Keys(s.groups)) {
				if m, ok := s.groups[name].members[u]; ok {
					out = append(out, m)
					break
				}
			}
		}
		s.replyLocked(c, protocol.AppendStatuses(nil, f.ID, out))
	case protocol.OpWatchCounts:
		c.watch = true
		c.wgroup = nil
		names := f.Groups
		if len(names) == 0 {
			names = slices.Sorted(maps.Keys(s.groups))
		} else {
			c.wgroup = map[string]bool{}
			for _, g := range names {
				c.wgroup[g] = true
			}
		}
		var counts []protocol.GroupCount
		for _, name := range names {
			if g := s.groups[name]; g != nil {
				counts = append(counts, g.counts(name, s.rev))
			}
		}
		s.replyLocked(c, protocol.AppendCounts(nil, f.ID, counts))
	case protocol.OpUnwatchCounts:
		c.watch, c.wgroup = false, nil
		s.replyLocked(c, protocol.AppendOK(nil, f.ID))
	case protocol.OpPing:
		s.replyLocked(c, protocol.AppendPong(nil, f.ID))
	case protocol.OpRefresh:
		if len(s.cfg.Tokens) > 0 && s.cfg.Tokens[f.Token] != c.user {
			errorf(protocol.CodeUnauthorized, "invalid token")
			return
		}
		s.replyLocked(c, protocol.AppendOK(nil, f.ID))
	}
}
