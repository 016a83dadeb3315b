package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/presenced/presenced/protocol"
)

// conn is one WebSocket connection and the requests waiting on it.
type conn struct {
	ws   *websocket.Conn
	done chan struct{} // closed once the reader and pinger have exited
	err  error         // why the connection ended; written before done closes

	mu sync.Mutex
	// mu guards the following fields.
	pending map[uint64]*request
	ended   bool
}

// request is a client frame waiting for its reply.
type request struct {
	frame protocol.ClientFrame
	// restore marks frames the client sent itself after a reconnect; nobody
	// waits for their reply.
	restore bool
	reply   chan reply // capacity 1; nil for restore
}

// reply is the outcome of a request.
type reply struct {
	frame protocol.ServerFrame
	snap  Snapshot // subscribe
	err   error
}

func newConn(ws *websocket.Conn) *conn {
	return &conn{ws: ws, done: make(chan struct{}), pending: map[uint64]*request{}}
}

func (cn *conn) take(id uint64) *request {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	req := cn.pending[id]
	delete(cn.pending, id)
	return req
}

// startConn starts the reader and pinger of cn. cn.done closes when both
// have exited, after the connection failed or ctx ended.
func (c *Client) startConn(ctx context.Context, cn *conn) {
	ctx, cancel := context.WithCancel(ctx)
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		c.ping(ctx, cn)
	}()
	go func() {
		err := c.read(ctx, cn)
		cancel()
		cn.ws.CloseNow()
		<-pingDone
		cn.mu.Lock()
		cn.ended = true
		cn.pending = nil
		cn.mu.Unlock()
		cn.err = err
		close(cn.done)
	}()
}

// read handles frames until the connection fails.
func (c *Client) read(ctx context.Context, cn *conn) error {
	for {
		typ, data, err := cn.ws.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			c.log.Debug("presence: skipping binary message")
			continue
		}
		f, err := protocol.DecodeServerFrame(data)
		if err != nil {
			c.log.Debug("presence: skipping frame", zap.Error(err))
			continue
		}
		c.handle(cn, &f)
	}
}

// ping checks that the server answers, and drops the connection when it
// does not, so that a silent network failure leads to a reconnect.
func (c *Client) ping(ctx context.Context, cn *conn) {
	if c.opts.PingInterval < 0 {
		return
	}
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.opts.PingTimeout)
		err := cn.ws.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("presence ping failed, dropping the connection", zap.Error(err))
				cn.ws.CloseNow()
			}
			return
		}
	}
}

// send registers req on cn and writes its frame.
func (c *Client) send(ctx context.Context, cn *conn, req *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req.frame.ID = c.nextID.Add(1)
	data, err := protocol.EncodeClientFrame(req.frame)
	if err != nil {
		return err
	}
	cn.mu.Lock()
	if cn.ended {
		cn.mu.Unlock()
		return ErrConnectionLost
	}
	cn.pending[req.frame.ID] = req
	cn.mu.Unlock()
	// The caller's ctx does not bound the write itself: a write cut short
	// closes the whole connection.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := cn.ws.Write(wctx, websocket.MessageText, data); err != nil {
		cn.take(req.frame.ID)
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	return nil
}

// handle processes one server frame on the reading goroutine.
func (c *Client) handle(cn *conn, f *protocol.ServerFrame) {
	if f.ID != 0 {
		if req := cn.take(f.ID); req != nil {
			r := c.handleReply(req, f)
			if req.reply != nil {
				req.reply <- r
			}
			return
		}
		c.log.Debug("presence: reply to no pending request", zap.Uint64("id", f.ID), zap.String("op", string(f.Op)))
		return
	}
	switch f.Op {
	case protocol.OpDelta:
		c.applyDelta(f)
	case protocol.OpCounts:
		c.applyCounts(f)
	case protocol.OpSnapshot:
		// Pushed: the group's revisions started over (a new epoch).
		c.mu.Lock()
		g := c.groups[f.Group]
		c.mu.Unlock()
		if g != nil && !g.countsOnly {
			c.applySnapshot(&request{restore: true}, f)
		}
	case protocol.OpError:
		err := f.Err()
		if f.Group != "" {
			c.endSubscription(f.Group, err)
			return
		}
		c.log.Warn("presence server error", zap.Error(err))
	}
}

// expectedReply lists the reply op of every request op.
var expectedReply = map[protocol.Op][]protocol.Op{
	protocol.OpSubscribe:     {protocol.OpSnapshot, protocol.OpResumed, protocol.OpCounts},
	protocol.OpUnsubscribe:   {protocol.OpOK},
	protocol.OpSetStatus:     {protocol.OpOK},
	protocol.OpQuery:         {protocol.OpStatuses},
	protocol.OpWatchCounts:   {protocol.OpCounts},
	protocol.OpUnwatchCounts: {protocol.OpOK},
	protocol.OpPing:          {protocol.OpPong},
	protocol.OpRefresh:       {protocol.OpOK},
}

func (c *Client) handleReply(req *request, f *protocol.ServerFrame) reply {
	r := reply{frame: *f}
	if f.Op == protocol.OpError {
		r.err = f.Err()
		if req.restore {
			switch req.frame.Op {
			case protocol.OpSubscribe:
				c.endSubscription(req.frame.Group, r.err)
			case protocol.OpWatchCounts:
				c.log.Warn("presence: counts watch not restored", zap.Error(r.err))
				c.mu.Lock()
				c.watching, c.watched = false, nil
				c.mu.Unlock()
			}
		}
		return r
	}
	ok := false
	for _, op := range expectedReply[req.frame.Op] {
		ok = ok || op == f.Op
	}
	if !ok {
		r.err = fmt.Errorf("%w: %s to %s", ErrUnexpectedReply, f.Op, req.frame.Op)
		return r
	}
	switch req.frame.Op {
	case protocol.OpSubscribe:
		if f.Group != req.frame.Group && f.Op != protocol.OpCounts {
			r.err = fmt.Errorf("%w: %s of group %q to subscribe %q", ErrUnexpectedReply, f.Op, f.Group, req.frame.Group)
			return r
		}
		switch f.Op {
		case protocol.OpSnapshot:
			r.snap = c.applySnapshot(req, f)
		case protocol.OpResumed:
			r.snap = c.applyResumed(req, f)
		case protocol.OpCounts:
			c.applySubscribeCounts(req, f)
		}
	case protocol.OpWatchCounts:
		c.mu.Lock()
		c.watching, c.watched = true, req.frame.Groups
		c.mu.Unlock()
		c.emit(Event{Type: EventCounts, Counts: slices.Clone(f.Groups)})
	case protocol.OpUnwatchCounts:
		c.mu.Lock()
		c.watching, c.watched = false, nil
		c.mu.Unlock()
	case protocol.OpRefresh:
		c.mu.Lock()
		c.token = req.frame.Token
		c.mu.Unlock()
	}
	return r
}

// applySnapshot replaces a group's state. A restore snapshot for a group
// unsubscribed meanwhile is dropped.
func (c *Client) applySnapshot(req *request, f *protocol.ServerFrame) Snapshot {
	g := newGroupFromSnapshot(f)
	members := g.sortedMembers()
	c.mu.Lock()
	if req.restore && c.groups[f.Group] == nil {
		c.mu.Unlock()
		return Snapshot{}
	}
	c.groups[f.Group] = g
	c.mu.Unlock()
	snap := Snapshot{Group: f.Group, Rev: f.Rev, Epoch: f.Epoch, Fresh: f.Fresh, Online: f.Online, Total: f.Total,
		Members: members}
	c.emit(Event{Type: EventSnapshot, Group: f.Group, Rev: f.Rev, Epoch: f.Epoch, Fresh: f.Fresh,
		Online: f.Online, Total: f.Total, Members: append([]protocol.Member(nil), members...)})
	return snap
}

// applyResumed applies the changes missed while disconnected.
func (c *Client) applyResumed(req *request, f *protocol.ServerFrame) Snapshot {
	c.mu.Lock()
	g := c.groups[f.Group]
	if g == nil || g.countsOnly {
		c.mu.Unlock()
		return Snapshot{}
	}
	g.epoch = f.Epoch
	applied := g.apply(f.Rev, f.Online, f.Total, f.Changes)
	snap := Snapshot{Group: f.Group, Rev: g.rev, Epoch: g.epoch, Online: g.online, Total: g.total,
		Members: g.sortedMembers()}
	c.mu.Unlock()
	c.emit(Event{Type: EventResumed, Group: f.Group, Rev: snap.Rev, Epoch: f.Epoch, Online: f.Online,
		Total: f.Total, Changes: applied})
	return snap
}

func (c *Client) applySubscribeCounts(req *request, f *protocol.ServerFrame) {
	c.mu.Lock()
	if req.restore && c.groups[req.frame.Group] == nil {
		c.mu.Unlock()
		return
	}
	g := &group{countsOnly: true}
	for _, gc := range f.Groups {
		if gc.Group == req.frame.Group {
			g.online, g.total, g.rev = gc.Online, gc.Total, gc.Rev
		}
	}
	c.groups[req.frame.Group] = g
	c.mu.Unlock()
	c.emit(Event{Type: EventCounts, Counts: slices.Clone(f.Groups)})
}

func (c *Client) applyDelta(f *protocol.ServerFrame) {
	c.mu.Lock()
	g := c.groups[f.Group]
	if g == nil || g.countsOnly || (f.Rev != 0 && f.Rev <= g.rev) {
		c.mu.Unlock()
		return
	}
	applied := g.apply(f.Rev, f.Online, f.Total, f.Changes)
	c.mu.Unlock()
	c.emit(Event{Type: EventDelta, Group: f.Group, Rev: f.Rev, Online: f.Online, Total: f.Total, Changes: applied})
}

func (c *Client) applyCounts(f *protocol.ServerFrame) {
	c.mu.Lock()
	for _, gc := range f.Groups {
		if g := c.groups[gc.Group]; g != nil && g.countsOnly && gc.Rev >= g.rev {
			g.online, g.total, g.rev = gc.Online, gc.Total, gc.Rev
		}
	}
	c.mu.Unlock()
	c.emit(Event{Type: EventCounts, Counts: f.Groups})
}

func (c *Client) endSubscription(group string, err error) {
	c.mu.Lock()
	_, had := c.groups[group]
	delete(c.groups, group)
	c.mu.Unlock()
	if had {
		c.log.Info("presence subscription ended", zap.String("group", group), zap.Error(err))
		c.emit(Event{Type: EventSubscriptionEnded, Group: group, Err: err})
	}
}

// isCode reports whether err is a *protocol.Error with code.
func isCode(err error, code protocol.ErrorCode) bool {
	e, ok := errors.AsType[*protocol.Error](err)
	return ok && e.Code == code
}
