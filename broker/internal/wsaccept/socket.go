package wsaccept

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Socket is the connection under a WebSocket accepted through
// SmallBuffers. It bounds each write with a deadline on the socket, and it
// sends each frame in one write.
//
// coder/websocket writes a frame's header into its buffered writer, then
// the payload. A payload longer than what is left of the BufSize buffer
// makes the buffer flush first, so without help every frame longer than
// about 500 bytes would cost two write syscalls, go out in two TCP segments
// and wake the reader twice. While WriteFrame runs, Socket gathers the
// buffer's flushes and sends them with the payload: small pieces are
// copied into a pooled buffer and leave when the frame is complete; a
// large piece (the payload, written past an empty buffer) leaves at once
// together with what was gathered, in one writev.
type Socket struct {
	mu sync.Mutex
	// mu guards the following fields. It is taken under coder/websocket's
	// write lock (Write) and outside it (release), never the other way.
	conn    net.Conn // as hijacked: deadlines and Close go here
	w       net.Conn // conn without the wrappers that write through, for writev
	holding bool
	held    *[]byte
}

// WriteThrough is implemented by a connection wrapper whose writes go
// unchanged to the connection it returns (a count of open connections):
// Socket writes to that one, so that a frame can leave in one writev. A
// wrapper that changes the bytes it writes (TLS) must not implement it.
type WriteThrough interface {
	WriteThrough() net.Conn
}

// gathered is the pool of buffers that hold a frame's small pieces while
// it is being written; a held buffer never outlives the write.
var gathered = sync.Pool{New: func() any { b := make([]byte, 0, 2*BufSize); return &b }}

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
	if !s.holding {
		return s.w.Write(p)
	}
	if len(p) <= BufSize {
		// A flush of the buffered writer, whose buffer is used again as
		// soon as this returns: keep a copy.
		*s.held = append(*s.held, p...)
		return len(p), nil
	}
	// The payload itself, written past an empty buffer. It is only valid
	// during this call, so it leaves now, with what is held before it.
	if len(*s.held) == 0 {
		return s.w.Write(p)
	}
	bufs := net.Buffers{*s.held, p}
	n, err := bufs.WriteTo(s.w)
	sent := int(n) - len(*s.held)
	*s.held = (*s.held)[:0]
	if err != nil {
		return max(sent, 0), err
	}
	return len(p), nil
}

func (s *Socket) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding = true
	s.held = gathered.Get().(*[]byte)
}

// release sends what is held and writes through again.
func (s *Socket) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding = false
	var err error
	if len(*s.held) > 0 {
		_, err = s.w.Write(*s.held)
	}
	if cap(*s.held) <= 16*BufSize {
		*s.held = (*s.held)[:0]
		gathered.Put(s.held)
	}
	s.held = nil
	return err
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
	s.hold()
	err := ws.Write(context.Background(), websocket.MessageText, frame)
	if rerr := s.release(); err == nil {
		err = rerr
	}
	_ = c.SetWriteDeadline(time.Time{})
	return err
}
