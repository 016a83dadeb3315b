package wsaccept

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Socket is the connection under a WebSocket accepted through
// SmallBuffers. It bounds each write with a deadline on the socket, and it
// sends each frame in one write. Reads go through it too (read.go): a
// budget lets the library read the whole messages that have arrived and
// stop at the next, so that no goroutine has to wait on an idle
// connection.
//
// coder/websocket writes a frame's header into its buffered writer, then
// the payload, and flushes the buffer when the frame is complete. A
// payload longer than what is left of the buffer (writeBufSize) makes the
// buffer flush first, full, in the middle of the frame; without help such
// a frame would cost two write syscalls, go out in two TCP segments and
// wake the reader twice. Socket keeps such a full buffer back and sends it
// with the next write, which is the rest of the frame: the payload written
// past the empty buffer, or the frame's final flush. Both go out together
// in one writev. A write of less than a full buffer ends a frame, and no
// frame ends with a full buffer of its own (see writeBufSize), so nothing
// waits behind the library's write lock: the library's own frames (pongs,
// close frames) and frames it is given directly are sent at once.
// WriteFrame's Flush sends what might be held all the same. A 101 held
// back (SmallBuffers.HoldUpgrade) leaves with the first frame, in the same
// writev. A write that fails fails every later one, as the buffered
// writer's own error does, so that no frame follows a cut-off one.
type Socket struct {
	mu sync.Mutex
	// mu guards the following fields. Writes come under coder/websocket's
	// write lock, Flush outside it.
	conn net.Conn // as hijacked: deadlines and Close go here
	w    net.Conn // conn without the wrappers that write through, for writev
	// held is what is kept back for the rest of its frame: a full buffer,
	// the 101 (SmallBuffers.HoldUpgrade), or the 101 and a full buffer;
	// or nil.
	held *[]byte
	err  error // the first failed write

	upgrade     bool // a 101 held back for the first frame (SmallBuffers.HoldUpgrade)
	heldUpgrade bool // held is the 101 alone

	// The read side (read.go), set by Hijack before the connection is
	// read and fixed after.
	r        io.Reader       // what the buffered reader reads through Read
	rc       syscall.RawConn // the TCP connection's descriptor, or nil
	prefixed bool            // bytes read ahead of the reader at the handshake
	budget   atomic.Int64    // 1 + the bytes a read may take; 0: no budget
	// A round's bytes read and not yet served (Read), under the library's
	// read lock.
	round             *[]byte
	roundAt, roundEnd int
	peeked            int // the bytes the last Peek saw, for WaitMore

	pong atomic.Int64 // when the last pong arrived (OnPong), unix ns
}

// WriteThrough is implemented by a connection wrapper whose writes go
// unchanged to the connection it returns (a count of open connections):
// Socket writes to that one, so that a frame can leave in one writev. A
// wrapper that changes the bytes it writes (TLS) must not implement it.
type WriteThrough interface {
	WriteThrough() net.Conn
}

// gathered is the pool of buffers that keep a full buffer back until the
// rest of its frame is written.
var gathered = sync.Pool{New: func() any { b := make([]byte, 0, BufSize); return &b }}

func (s *Socket) attach(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn, s.w = c, c
	// A wrapper hides the TCP connection's writev from net.Buffers. Over
	// TLS the connection is a *tls.Conn, which is kept: a frame's pieces
	// then go as separate writes, encrypted.
	for {
		u, ok := s.w.(WriteThrough)
		if !ok {
			break
		}
		s.w = u.WriteThrough()
	}
	if sc, ok := s.w.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.rc = rc
		}
	}
}

// Conn is the hijacked connection, or nil before the handshake or when the
// ResponseWriter could not be hijacked.
func (s *Socket) Conn() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Write is what the WebSocket's buffered writer writes to.
func (s *Socket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == writeBufSize && (s.held == nil || s.heldUpgrade) {
		// A full buffer, flushed in the middle of a frame and used again
		// as soon as this returns: keep a copy for the rest of the frame.
		s.keep(p)
		s.heldUpgrade = false
		return len(p), nil
	}
	if s.held == nil {
		return s.fail(s.w.Write(p))
	}
	// The rest of the frame: it leaves with what is kept back.
	held := len(*s.held)
	bufs := net.Buffers{*s.held, p}
	n, err := bufs.WriteTo(s.w)
	s.dropHeld()
	return s.fail(max(int(n)-held, 0), err)
}

// keep appends p to what is kept back.
func (s *Socket) keep(p []byte) {
	if s.held == nil {
		s.held = gathered.Get().(*[]byte)
	}
	*s.held = append(*s.held, p...)
}

// Flush sends what is kept back.
func (s *Socket) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.held == nil {
		return s.err
	}
	_, err := s.w.Write(*s.held)
	s.dropHeld()
	_, err = s.fail(0, err)
	return err
}

// dropHeld gives the kept-back buffer to the pool; the caller has written
// it, or failed to.
func (s *Socket) dropHeld() {
	*s.held = (*s.held)[:0]
	gathered.Put(s.held)
	s.held, s.heldUpgrade = nil, false
}

// fail records err, the first failed write, for every later one.
func (s *Socket) fail(n int, err error) (int, error) {
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// WriteFrame writes frame as one text message on ws, which must have been
// accepted with s, within timeout. The deadline is set on the socket, not
// in a context: a context with a timeout per frame would cost a timer and
// the library's watch of it on every frame of every fan-out. The deadline
// is cleared afterwards, since the library writes pongs and close frames
// on the same socket. Callers serialize their frames.
func (s *Socket) WriteFrame(ws *websocket.Conn, frame []byte, timeout time.Duration) error {
	c := s.Conn()
	if c == nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return ws.Write(ctx, websocket.MessageText, frame)
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	err := ws.Write(context.Background(), websocket.MessageText, frame)
	if ferr := s.Flush(); err == nil {
		err = ferr
	}
	_ = c.SetWriteDeadline(time.Time{})
	return err
}
