package wsaccept

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"syscall"
)

// ErrWouldBlock is what the WebSocket's reader gets from a Socket whose
// read budget is spent (see SetBudget): the read stopped at a message
// boundary, with nothing consumed past it.
var ErrWouldBlock = errors.New("wsaccept: read budget spent")

// Read is what the WebSocket's buffered reader reads from. Within a budget
// (SetBudget) it reads no further than the budget and then fails with
// ErrWouldBlock; without one it reads as the connection does.
func (s *Socket) Read(p []byte) (int, error) {
	left := s.budget.Load() - 1
	if left < 0 {
		return s.r.Read(p)
	}
	if left == 0 {
		return 0, ErrWouldBlock
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := s.r.Read(p)
	s.budget.Add(-int64(n))
	return n, err
}

// SetBudget lets the next reads take n more bytes from the connection, or
// any number for n < 0. A budget that ends at a message boundary (see
// Peek) lets coder/websocket read every whole message and then stop,
// without waiting, at the next frame's first byte, where a failed read
// leaves its reader as it was: the connection can be read again later.
func (s *Socket) SetBudget(n int64) { s.budget.Store(max(n, -1) + 1) }

// Pollable reports whether the connection's readiness can be asked of the
// kernel (Peek, RawConn): a TCP connection with nothing read ahead of the
// library's reader. Over TLS, or with a first frame pipelined behind the
// handshake, it is read with a goroutine of its own.
func (s *Socket) Pollable() bool { return s.rc != nil && !s.prefixed }

// RawConn is the connection's descriptor, for a poller.
func (s *Socket) RawConn() syscall.RawConn { return s.rc }

// Readable says what the client has sent that the server has not read.
type Readable int

const (
	// Nothing has arrived.
	Nothing Readable = iota
	// Messages: whole messages, up to the budget Peek returns.
	Messages
	// Unknown: where the first message ends cannot be told from its
	// first bytes (a header cut short, a fragmented message longer than a
	// peek): read it without a budget.
	Unknown
	// Ended: the client closed its side (without a close frame) or the
	// connection failed or was closed.
	Ended
)

// peekSize is how much of what has arrived Peek looks at: ops are small.
const peekSize = 4096

var peekBufs = sync.Pool{New: func() any { b := make([]byte, peekSize); return &b }}

// Peek looks, without reading, at what the kernel holds for the
// connection (Pollable only, and only while nothing reads it) and returns
// the budget that ends at the last message boundary it can tell. arrived
// is false when the message that ends there is still arriving: reading it
// will wait for the rest.
func (s *Socket) Peek() (kind Readable, budget int64, arrived bool) {
	bp := peekBufs.Get().(*[]byte)
	defer peekBufs.Put(bp)
	n, err := peek(s.rc, *bp)
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return Nothing, 0, true
	case err != nil || n == 0:
		return Ended, -1, false
	}
	end := MessagesEnd((*bp)[:n])
	if end == 0 {
		return Unknown, -1, false
	}
	return Messages, end, end <= int64(n)
}

// MessagesEnd parses the WebSocket frames at the start of b, the first
// bytes of what a client sent from a message boundary on, and returns the
// offset just past the last message (or control frame between messages)
// in b. When b holds no whole message it returns the end of the first one
// if its header tells it, past b; otherwise 0.
func MessagesEnd(b []byte) int64 {
	var pos, whole, first int64 // first: the end of the first message
	inMessage := false
	for pos < int64(len(b)) {
		h := b[pos:]
		if len(h) < 2 {
			break
		}
		fin, opcode := h[0]&0x80 != 0, h[0]&0x0f
		size, masked := int64(h[1]&0x7f), h[1]&0x80 != 0
		hdr := int64(2)
		switch size {
		case 126:
			hdr += 2
		case 127:
			hdr += 8
		}
		if int64(len(h)) < hdr {
			break
		}
		switch size {
		case 126:
			size = int64(binary.BigEndian.Uint16(h[2:]))
		case 127:
			u := binary.BigEndian.Uint64(h[2:])
			if u > 1<<62 {
				return whole // the library refuses it
			}
			size = int64(u)
		}
		if masked {
			hdr += 4
		}
		frameEnd := pos + hdr + size
		// Control frames may come between the frames of a message.
		ends := opcode >= 8 && !inMessage || opcode < 8 && fin
		if opcode < 8 {
			inMessage = !fin
		}
		if ends && first == 0 {
			first = frameEnd
		}
		if frameEnd > int64(len(b)) {
			break
		}
		if ends {
			whole = frameEnd
		}
		pos = frameEnd
	}
	if whole > 0 {
		return whole
	}
	return first
}

// ensure Socket reads as an io.Reader for bufio.
var _ io.Reader = (*Socket)(nil)
