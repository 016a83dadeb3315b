package ddp

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/presenced/presenced/broker/internal/wsaccept"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// ErrClosed is returned by Start after Shutdown.
var ErrClosed = errors.New("ddp: handler shut down")

// Handler serves Rocket.Chat's realtime API. Its methods are safe for
// concurrent use.
type Handler struct {
	cfg       Config
	log       *zap.Logger
	patterns  []string // Origin host patterns
	anyOrigin bool

	writes chan *conn     // connections with changes to write
	quit   chan struct{}  // stops the pinger and the writers
	wg     sync.WaitGroup // the pinger and the writers

	mu sync.Mutex
	// mu guards the following fields.
	conns   map[*conn]struct{}
	started bool
	closed  bool

	recheckMu sync.Mutex
	// recheckMu guards the following fields (see Recheck).
	rechecks   map[string]membership.User // by id, waiting for recheckAll
	rechecking bool                       // recheckAll runs
}

// New checks cfg and returns a handler; Start makes it serve.
func New(cfg Config) (*Handler, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, conns: map[*conn]struct{}{}, quit: make(chan struct{})}
	h.patterns, h.anyOrigin = wsaccept.OriginPatterns(cfg.AllowedOrigins)
	return h, nil
}

// writers is how many connections may be written at the same time; a
// worker writing to a slow client waits at most writeTimeout.
func writers() int { return 8 * runtime.GOMAXPROCS(0) }

// Start starts the goroutines that write changes and ping idle
// connections. Upgrades are refused with 503 before.
func (h *Handler) Start() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.started {
		return nil
	}
	h.started = true
	h.writes = make(chan *conn, 1<<12)
	n := writers()
	h.wg.Add(n + 1)
	for range n {
		go func() {
			defer h.wg.Done()
			for {
				select {
				case c := <-h.writes:
					c.flush()
				case <-h.quit:
					return
				}
			}
		}()
	}
	go func() {
		defer h.wg.Done()
		h.pinger()
	}()
	return nil
}

// Shutdown closes every connection with 1001 going away (their sessions
// enter their grace period) and waits for them to end, or for ctx: then
// the rest are dropped. An ended ctx drops every connection at once, as if
// the process died. A nil Handler has nothing to shut down.
func (h *Handler) Shutdown(ctx context.Context) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	already := h.closed
	h.closed = true
	started := h.started
	h.mu.Unlock()
	if !already {
		for _, c := range h.all() {
			if ctx.Err() != nil {
				c.drop()
			} else {
				c.close(protocol.CloseGoingAway)
			}
		}
	}
	var err error
	for _, c := range h.all() {
		select {
		case <-c.done:
		case <-ctx.Done():
			c.drop()
			<-c.done
			err = ctx.Err()
		}
	}
	if !already && started {
		close(h.quit)
		h.wg.Wait()
	}
	return err
}

// CloseAll closes every connection with code (a protocol.Close* code):
// 4012 when this node can no longer serve presence. DDP clients reconnect
// on any close. A nil Handler closes nothing.
func (h *Handler) CloseAll(code int) {
	if h == nil {
		return
	}
	for _, c := range h.all() {
		c.close(code)
	}
}

// CloseWhere closes, with 4002 unauthorized, every logged-in connection
// whose credential match reports, and returns how many. The broker calls
// it when a token is revoked (match c.TokenID) or a user deactivated or
// deleted (match c.UserID); the client reconnects, and its login fails.
// A nil Handler closes nothing.
func (h *Handler) CloseWhere(match func(membership.Credential) bool) int {
	if h == nil {
		return 0
	}
	n := 0
	for _, c := range h.all() {
		if cred, ok := c.credential(); ok && match(cred) {
			c.close(protocol.CloseUnauthorized)
			n++
		}
	}
	if n > 0 {
		h.log.Info("closed DDP connections whose credential is no longer valid", zap.Int("connections", n))
	}
	return n
}

// Len returns the number of open connections.
func (h *Handler) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *Handler) all() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

func (h *Handler) add(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !h.started {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Handler) remove(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// schedule queues c for a writer unless it is queued already. It never
// blocks: it runs under the presence engine's locks.
func (h *Handler) schedule(c *conn) {
	if !c.queued.CompareAndSwap(false, true) {
		return
	}
	select {
	case h.writes <- c:
	case <-h.quit:
	default:
		go c.flush() // every writer is busy and the queue is full
	}
}

// ServeHTTP answers GET /websocket, /sockjs/{server}/{session}/websocket
// and /sockjs/info, and 404 for any other path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var sockjs bool
	switch {
	case r.URL.Path == "/sockjs/info":
		serveInfo(w)
		return
	case r.URL.Path == "/websocket":
	case isSockJSWebSocket(r.URL.Path):
		sockjs = true
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.mu.Lock()
	serving := h.started && !h.closed
	h.mu.Unlock()
	if !serving {
		unavailable(w, "not serving")
		return
	}
	if h.cfg.Available != nil {
		if err := h.cfg.Available(); err != nil {
			unavailable(w, err.Error())
			return
		}
	}
	sock := new(wsaccept.Socket)
	ws, err := websocket.Accept(wsaccept.SmallBuffers{ResponseWriter: w, Socket: sock}, r, &websocket.AcceptOptions{
		OriginPatterns:     h.patterns,
		InsecureSkipVerify: h.anyOrigin,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered
	}
	ws.SetReadLimit(h.cfg.MaxFrameBytes)
	c := &conn{
		h:       h,
		ws:      ws,
		sock:    sock,
		sockjs:  sockjs,
		limiter: rate.NewLimiter(rate.Limit(h.cfg.OpsPerSecond), int(2*h.cfg.OpsPerSecond)),
		done:    make(chan struct{}),
		subs:    map[string]*stream{},
		watched: map[string]int{},
	}
	c.lastRead.Store(h.cfg.Now().UnixNano())
	if !h.add(c) {
		close(c.done)
		_ = ws.Close(protocol.CloseGoingAway, protocol.CloseText(protocol.CloseGoingAway))
		return
	}
	// The request's goroutine and buffers go; the connection lives on in
	// its reader.
	go c.run()
}

func unavailable(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", "5")
	http.Error(w, "presence unavailable on this node: "+why, http.StatusServiceUnavailable)
}

// pinger sends a DDP ping to connections silent for a third of the idle
// timeout, once their DDP handshake is done (a ping before it would be
// answered by a pong the protocol refuses), and closes those silent for
// all of it.
func (h *Handler) pinger() {
	idle := h.cfg.IdleTimeout
	t := time.NewTicker(idle / 6)
	defer t.Stop()
	sem := make(chan struct{}, 64)
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		now := h.cfg.Now().UnixNano()
		for _, c := range h.all() {
			silent := time.Duration(now - c.lastRead.Load())
			switch {
			case silent >= idle:
				c.close(protocol.CloseIdleTimeout)
			case silent >= idle/3 && c.isConnected() && c.pinged.CompareAndSwap(false, true):
				select {
				case sem <- struct{}{}:
				case <-h.quit:
					return
				}
				h.wg.Add(1) // the pinger holds the group open meanwhile
				go func() {
					defer h.wg.Done()
					defer func() { <-sem }()
					_ = c.send(ping())
				}()
			}
		}
	}
}
