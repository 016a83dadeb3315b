package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/presenced/presenced/protocol"
)

// Client is a connection to a presenced broker that survives reconnects.
// Its methods are safe for concurrent use.
type Client struct {
	url  string
	opts Options
	log  *zap.Logger

	events    chan Event // nil with Options.OnEvent
	cancel    context.CancelFunc
	closingCh chan struct{} // closed by Close
	done      chan struct{} // closed when run has returned and Events is closed

	nextID     atomic.Uint64
	reconnects atomic.Uint64
	dropped    atomic.Uint64

	mu sync.Mutex
	// mu guards the following fields.
	conn     *conn         // nil while disconnected
	connCh   chan struct{} // closed when conn is set; renewed on disconnect
	closing  bool          // Close was called
	stopped  bool          // run returned
	stopErr  error         // why the client stopped by itself
	hello    protocol.Hello
	token    string
	groups   map[string]*group
	watching bool     // a counts watch is active
	watched  []string // its groups (nil: all)
}

// handshakeTimeout bounds each connection attempt of a reconnect.
const handshakeTimeout = 30 * time.Second

// writeTimeout bounds the write of one frame. A write that cannot finish in
// that time means a dead connection, which is then dropped.
const writeTimeout = 10 * time.Second

// Dial connects to the broker at url (ws:// or wss://, path /v1/ws) and
// returns once the server's hello arrived. ctx bounds only the connection
// attempt. The first attempt is not retried, even with Options.Reconnect.
func Dial(ctx context.Context, url string, opts *Options) (*Client, error) {
	o := opts.withDefaults()
	c := &Client{
		url:       url,
		opts:      o,
		log:       o.Logger,
		done:      make(chan struct{}),
		closingCh: make(chan struct{}),
		connCh:    make(chan struct{}),
		token:     o.Token,
		groups:    map[string]*group{},
	}
	cn, hello, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	if o.OnEvent == nil {
		c.events = make(chan Event, o.EventBuffer)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.setConnected(cn, hello)
	c.emit(Event{Type: EventConnected, Hello: hello})
	c.startConn(runCtx, cn)
	go c.run(runCtx, cn)
	return c, nil
}

// Close ends the connection with a normal closure, stops reconnecting and
// waits until every goroutine of the client has exited. Pending and later
// calls return ErrClosed. Close is idempotent and returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closing = true
	close(c.closingCh)
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		cn.ws.Close(websocket.StatusNormalClosure, "")
	}
	c.cancel()
	<-c.done
	return nil
}

// Events returns the channel of events, nil when Options.OnEvent is set. It
// holds up to Options.EventBuffer events; when it is full, new events are
// dropped (and counted by Dropped) rather than holding up the connection.
// The member view (Members, Counts) stays exact either way. The channel is
// closed after the last event, EventClosed.
func (c *Client) Events() <-chan Event { return c.events }

// Dropped is the number of events dropped because Events was full.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Hello returns the hello of the current (or last) connection.
func (c *Client) Hello() protocol.Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// Reconnects is the number of successful reconnects.
func (c *Client) Reconnects() uint64 { return c.reconnects.Load() }

// Connected reports whether a connection is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// emit delivers an event. Only one goroutine emits at a time: Dial before
// the connection goroutines start, then a connection's reader, and run
// between connections.
func (c *Client) emit(ev Event) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(ev)
		return
	}
	select {
	case c.events <- ev:
	default:
		c.dropped.Add(1)
	}
}

func (c *Client) setConnected(cn *conn, hello protocol.Hello) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = cn
	c.hello = hello
	close(c.connCh)
}

// run owns the connection lifecycle: it waits for the current connection
// to end, reconnects when it should, and stops the client.
func (c *Client) run(ctx context.Context, cn *conn) {
	defer close(c.done)
	var final error
	for {
		select {
		case <-cn.done:
		case <-ctx.Done():
			cn.ws.CloseNow()
			<-cn.done
		}
		err := cn.err
		c.mu.Lock()
		c.conn = nil
		closing := c.closing
		if !closing {
			c.connCh = make(chan struct{})
		}
		c.mu.Unlock()
		if closing {
			break
		}
		c.log.Info("presence connection lost", zap.Error(err))
		c.emit(Event{Type: EventDisconnected, Err: err})
		if !c.opts.Reconnect || c.permanent(err) {
			final = err
			break
		}
		if cn, final = c.reconnect(ctx); cn == nil {
			break
		}
	}
	c.mu.Lock()
	c.stopped = true
	c.stopErr = final
	c.mu.Unlock()
	c.emit(Event{Type: EventClosed, Err: final})
	if c.events != nil {
		close(c.events)
	}
}

// reconnect dials until it succeeds, meets a permanent error, or ctx ends
// (Close: it then returns nil, nil).
func (c *Client) reconnect(ctx context.Context) (*conn, error) {
	for attempt := 0; ; attempt++ {
		t := time.NewTimer(protocol.Backoff(attempt, c.opts.MinBackoff, c.opts.MaxBackoff, jitter()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		cn, hello, err := c.connect(dctx)
		cancel()
		if ctx.Err() != nil {
			if cn != nil {
				cn.ws.CloseNow()
			}
			return nil, nil
		}
		if err != nil {
			c.log.Warn("presence reconnect failed", zap.Int("attempt", attempt+1), zap.Error(err))
			if c.permanent(err) {
				return nil, err
			}
			continue
		}
		c.reconnects.Add(1)
		c.log.Info("presence reconnected", zap.String("node", hello.Node), zap.String("session", hello.Session))
		c.setConnected(cn, hello)
		c.emit(Event{Type: EventConnected, Hello: hello})
		c.startConn(ctx, cn)
		c.restore(ctx, cn)
		return cn, nil
	}
}

// restore re-subscribes every group from its last revision and renews the
// counts watch. Replies are handled by the reader like any other.
func (c *Client) restore(ctx context.Context, cn *conn) {
	c.mu.Lock()
	frames := make([]protocol.ClientFrame, 0, len(c.groups)+1)
	for name, g := range c.groups {
		f := protocol.ClientFrame{Op: protocol.OpSubscribe, Group: name, CountsOnly: g.countsOnly}
		if !g.countsOnly {
			f.Rev, f.Epoch = g.rev, g.epoch
		}
		frames = append(frames, f)
	}
	if c.watching {
		frames = append(frames, protocol.ClientFrame{Op: protocol.OpWatchCounts, Groups: c.watched})
	}
	c.mu.Unlock()
	for _, f := range frames {
		if err := c.send(ctx, cn, &request{frame: f, restore: true}); err != nil {
			c.log.Warn("presence restore failed", zap.String("op", string(f.Op)), zap.String("group", f.Group), zap.Error(err))
			return
		}
	}
}

// permanent reports whether err ends the client instead of a reconnect.
func (c *Client) permanent(err error) bool {
	if e, ok := errors.AsType[*protocol.Error](err); ok {
		return e.Code == protocol.CodeUnauthorized || e.Code == protocol.CodeForbidden
	}
	code := int(websocket.CloseStatus(err))
	if code == protocol.CloseTokenExpired && c.opts.TokenFunc != nil {
		return false
	}
	return protocol.ClosePermanent(code)
}

// connect performs one handshake and reads the hello.
func (c *Client) connect(ctx context.Context) (*conn, protocol.Hello, error) {
	token, err := c.currentToken(ctx)
	if err != nil {
		return nil, protocol.Hello{}, fmt.Errorf("client: token: %w", err)
	}
	u, err := c.dialURL()
	if err != nil {
		return nil, protocol.Hello{}, err
	}
	header := c.opts.HTTPHeader.Clone()
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:   c.opts.HTTPClient,
		HTTPHeader:   header,
		Subprotocols: []string{protocol.Subprotocol},
	})
	if err != nil {
		if resp != nil {
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				err = errors.Join(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "handshake refused: " + resp.Status}, err)
			case http.StatusForbidden:
				err = errors.Join(&protocol.Error{Code: protocol.CodeForbidden, Message: "handshake refused: " + resp.Status}, err)
			}
		}
		return nil, protocol.Hello{}, fmt.Errorf("client: dial %s: %w", c.url, err)
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "subprotocol "+protocol.Subprotocol+" required")
		return nil, protocol.Hello{}, fmt.Errorf("client: server did not select subprotocol %s", protocol.Subprotocol)
	}
	ws.SetReadLimit(c.opts.ReadLimit)
	typ, data, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, protocol.Hello{}, fmt.Errorf("client: waiting for hello: %w", err)
	}
	f, err := protocol.DecodeServerFrame(data)
	if err == nil && (typ != websocket.MessageText || f.Op != protocol.OpHello || f.V != protocol.Version) {
		err = fmt.Errorf("first frame is not a v%d hello: %.100s", protocol.Version, data)
	}
	if err != nil {
		ws.Close(protocol.CloseProtocolError, protocol.CloseText(protocol.CloseProtocolError))
		return nil, protocol.Hello{}, fmt.Errorf("client: %w", err)
	}
	return newConn(ws), f.Hello(), nil
}

func (c *Client) currentToken(ctx context.Context) (string, error) {
	if c.opts.TokenFunc != nil {
		return c.opts.TokenFunc(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, nil
}

func (c *Client) dialURL() (string, error) {
	if c.opts.Device == "" && c.opts.ClientName == "" {
		return c.url, nil
	}
	u, err := url.Parse(c.url)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	q := u.Query()
	if c.opts.Device != "" {
		q.Set("device", c.opts.Device)
	}
	if c.opts.ClientName != "" {
		q.Set("client", c.opts.ClientName)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// currentConn waits for a connection, ctx or the end of the client.
func (c *Client) currentConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if err := c.stoppedErrLocked(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		if c.conn != nil {
			cn := c.conn
			c.mu.Unlock()
			return cn, nil
		}
		ch := c.connCh
		c.mu.Unlock()
		select {
		case <-ch:
		case <-c.closingCh:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// stoppedErrLocked returns the error of calls on a stopped client, or nil.
func (c *Client) stoppedErrLocked() error {
	switch {
	case c.closing:
		return ErrClosed
	case c.stopped && c.stopErr != nil:
		return fmt.Errorf("%w: %w", ErrClosed, c.stopErr)
	case c.stopped:
		return ErrClosed
	}
	return nil
}

// lostErr is the error of a request whose connection ended.
func (c *Client) lostErr(cause error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return ErrClosed
	}
	return cause
}
