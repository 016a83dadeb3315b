package broker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
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
// listener), the refusals in flight (refusers) and fdSlack are kept aside;
// 0 when the limit is unknown. A connection limit set above it would let
// connections take the descriptors the store needs: nats-server then fails
// to open a file, and a stream whose write failed refuses every later write
// until the process restarts. /dev/fd lists the process's descriptors on
// Linux (as /proc/self/fd), the BSDs and macOS.
func connectionCap() int {
	nofile := openFilesLimit()
	if nofile == 0 {
		return 0
	}
	held := 0
	if fds, err := os.ReadDir("/dev/fd"); err == nil {
		held = len(fds)
	}
	return max(nofile-held-refusers-fdSlack, 16)
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
}

func newLimitListener(ln net.Listener, max int, log *zap.Logger) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), busy: make(chan struct{}, refusers), log: log}
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
			refuse(c)
		}()
	}
}

// refuse answers a connection over the limit and closes it: /healthz gets
// 200 (the node is alive, only full), anything else 503 with Retry-After.
// It reads the request's head first and lingers after its answer, as
// net/http does: a connection closed with bytes unread is reset, and the
// reset can reach the client before the answer does.
func refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	br := bufio.NewReaderSize(c, 1024)
	line, _ := br.ReadString('\n')
	for range 100 { // the header lines, up to the blank one
		h, err := br.ReadSlice('\n')
		if err != nil || len(bytes.TrimSpace(h)) == 0 {
			break
		}
	}
	var answer string
	if strings.HasPrefix(line, "GET /healthz ") {
		const body = `{"status":"ok","connections":"at the limit"}` + "\n"
		answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
	} else {
		const body = `{"error":{"code":"unavailable","message":"too many open connections, retry"}}` + "\n"
		answer = "HTTP/1.1 503 Service Unavailable\r\n" +
			"Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	if _, err := io.WriteString(c, answer); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(refuseTimeout / 4))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
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
