package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presenced/presenced/broker/internal/wsaccept"
	"go.uber.org/zap"
)

// A process has a bounded number of open files, and every HTTP or
// WebSocket connection takes one. Without a bound of its own, idle
// connections can take them all: then every new connection, /healthz
// included, goes unanswered, and the store cannot open its files. So the
// listener counts its connections and, past MaxConnections, accepts a new
// one only to answer it at once (503, or 200 for /healthz) and close it,
// from a small reserve of descriptors kept for that.

// fdReserve is how many descriptors the default MaxConnections leaves for
// the store, NATS, the listeners and the answers to connections over the
// limit.
const fdReserve = 100

// defaultMaxConnections is the process's open files limit less fdReserve.
func defaultMaxConnections() int {
	nofile := openFilesLimit()
	if nofile == 0 {
		return 1 << 20
	}
	return max(nofile-fdReserve, 16)
}

// fdSlack is the room kept for what the node opens after it starts
// serving: a new block file when one fills, the state file written beside
// it, a webhook's outbound connection. It is fixed: many webhooks
// delivering at once to slow endpoints while the connections are at their
// limit can need more.
const fdSlack = 32

// connectionCap is the most connections the open files limit leaves room
// for once the descriptors the process holds now (the store, NATS, the
// listener), the refusals in flight (refusers), the embedded NATS client
// port's bound (natsConns, 0 when closed) and fdSlack are kept aside; 0
// when the limit is unknown. A connection limit set above it would let
// connections take the descriptors the store needs: nats-server then fails
// to open a file, and a stream whose write failed refuses every later write
// until the process restarts. /dev/fd lists the process's descriptors on
// Linux (as /proc/self/fd), the BSDs and macOS.
func connectionCap(natsConns int) int {
	nofile := openFilesLimit()
	if nofile == 0 {
		return 0
	}
	held := 0
	if fds, err := os.ReadDir("/dev/fd"); err == nil {
		held = len(fds)
	}
	return max(nofile-held-refusers-natsConns-fdSlack, 16)
}

// openFilesLimit is the process's soft limit of open files; 0 if unknown or
// too large to matter.
func openFilesLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<24 {
		return 0
	}
	return int(rl.Cur)
}

// refusers bounds the connections over the limit being answered at once;
// past it Accept waits for one to finish (within refuseTimeout), leaving
// the next connections in the kernel's backlog: closing them unanswered
// would reset them, and their clients would learn nothing.
const refusers = 32

// refuseTimeout bounds the answer to one connection over the limit.
const refuseTimeout = time.Second

// limitListener counts open connections and refuses those over max.
type limitListener struct {
	net.Listener
	max     int64
	active  atomic.Int64
	refused atomic.Uint64
	busy    chan struct{} // a slot per refusal being answered
	log     *zap.Logger
	serve   http.Handler // answers /readyz and /metrics over the limit
}

func newLimitListener(ln net.Listener, max int, log *zap.Logger, serve http.Handler) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), busy: make(chan struct{}, refusers), log: log, serve: serve}
}

// Accept returns the next connection within the limit; those over it are
// answered and closed on the side.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) <= l.max {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.active.Add(-1)
		if n := l.refused.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th...: not one line per refusal
			l.log.Warn("connection refused: too many open connections", zap.Int64("max", l.max), zap.Uint64("refused", n))
		}
		l.busy <- struct{}{}
		go func() {
			defer func() { <-l.busy }()
			l.refuse(c)
		}()
	}
}

// refuse answers a connection over the limit and closes it: /healthz gets
// 200 (the node is alive, only full), /readyz and /metrics their answer
// from l.serve (a probe or a scrape must see the node as it is, most of all
// when it is full), anything else 503 with Retry-After. It reads the
// request's head first and lingers after its answer, as net/http does: a
// connection closed with bytes unread is reset, and the reset can reach
// the client before the answer does.
func (l *limitListener) refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	req, err := http.ReadRequest(bufio.NewReaderSize(io.LimitReader(c, refuseHeadLimit), 1024))
	var answer []byte
	switch {
	case err == nil && req.Method == http.MethodGet && req.URL.Path == "/healthz":
		answer = plainAnswer(http.StatusOK, nil, `{"status":"ok","connections":"at the limit"}`+"\n")
	case err == nil && req.Method == http.MethodGet && (req.URL.Path == "/readyz" || req.URL.Path == "/metrics") && l.serve != nil:
		answer = l.served(c, req)
	default:
		answer = plainAnswer(http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}},
			`{"error":{"code":"unavailable","message":"too many open connections, retry"}}`+"\n")
	}
	if _, err := c.Write(answer); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(refuseTimeout / 4))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
}

// refuseHeadLimit bounds what a refused connection may send before its
// answer.
const refuseHeadLimit = 64 << 10

// served answers req with l.serve, the node's own handler.
func (l *limitListener) served(c net.Conn, req *http.Request) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), refuseTimeout)
	defer cancel()
	req = req.WithContext(ctx)
	req.RemoteAddr = c.RemoteAddr().String()
	w := &bufferedResponse{header: http.Header{}}
	l.serve.ServeHTTP(w, req)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return plainAnswer(w.code, w.header, w.body.String())
}

// plainAnswer is an HTTP/1.1 response that closes its connection.
func plainAnswer(code int, h http.Header, body string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Connection", "close")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.Bytes()
}

// bufferedResponse is an http.ResponseWriter that keeps the answer.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// countedConn gives its slot back when closed, once.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

var _ wsaccept.WriteThrough = (*countedConn)(nil)

// WriteThrough is the connection counted: writes go to it unchanged.
func (c *countedConn) WriteThrough() net.Conn { return c.Conn }

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.active.Add(-1) })
	return c.Conn.Close()
}
