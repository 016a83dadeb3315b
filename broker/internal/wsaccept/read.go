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
// ErrWouldBlock; without one it reads as the connection does. Within a
// budget, small reads (the library's buffered reader of a polled
// connection has a tiny buffer, see SmallBuffers.Polled) are served from a
// pooled buffer that holds what one read from the connection returned, and
// goes back to the pool once served: a connection keeps no read buffer
// between rounds. Reads are serialized by the library's read lock.
func (s *Socket) Read(p []byte) (int, error) {
	if s.round != nil {
		return s.fromRound(p), nil
	}
	left := s.budget.Load() - 1
	switch {
	case left < 0:
		return s.r.Read(p)
	case left == 0:
		return 0, ErrWouldBlock
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	if len(p) >= roundSize || int64(len(p)) == left {
		n, err := s.r.Read(p)
		s.budget.Add(-int64(n))
		return n, err
	}
	b := roundBufs.Get().(*[]byte)
	// A TCP connection's read returns bytes or an error, not both.
	n, err := s.r.Read((*b)[:min(left, roundSize)])
	s.budget.Add(-int64(n))
	if n == 0 {
		roundBufs.Put(b)
		return 0, err
	}
	s.round, s.roundAt, s.roundEnd = b, 0, n
	return s.fromRound(p), nil
}

// fromRound serves p from the round's buffer and gives the buffer back once
// it is all served.
func (s *Socket) fromRound(p []byte) int {
	n := copy(p, (*s.round)[s.roundAt:s.roundEnd])
	s.roundAt += n
	if s.roundAt == s.roundEnd {
		roundBufs.Put(s.round)
		s.round = nil
	}
	return n
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
	// Partial: the first frame's header is cut short (the rest of its
	// TCP segment is on its way): wait for more (WaitMore) and peek again.
	Partial
	// Unknown: the first message's end cannot be told from its header: a
	// fragmented message (control frames may come between its fragments,
	// and only the library reads them there), or a header the library
	// refuses. Read it without a budget.
	Unknown
	// Ended: the client closed its side (without a close frame) or the
	// connection failed or was closed.
	Ended
)

// roundSize is how much of what has arrived Peek looks at, and the most a
// round's read takes at once: ops are small.
const roundSize = 4096

var roundBufs = sync.Pool{New: func() any { b := make([]byte, roundSize); return &b }}

// Peek looks, without reading, at what the kernel holds for the
// connection (Pollable only, and only while nothing reads it) and returns
// the budget that ends at the last message boundary it can tell. arrived
// is false when the message that ends there is still arriving: reading it
// will wait for the rest.
func (s *Socket) Peek() (kind Readable, budget int64, arrived bool) {
	bp := roundBufs.Get().(*[]byte)
	defer roundBufs.Put(bp)
	n, err := peek(s.rc, *bp)
	s.peeked = n
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return Nothing, 0, true
	case err != nil || n == 0:
		return Ended, -1, false
	}
	end := MessagesEnd((*bp)[:n])
	switch {
	case end == 0 && n < headerLen((*bp)[:n]):
		return Partial, -1, false
	case end == 0:
		return Unknown, -1, false
	}
	return Messages, end, end <= int64(n)
}

// headerLen is the length of the header of the frame at the start of b, as
// far as b tells it (at least 2).
func headerLen(b []byte) int {
	if len(b) < 2 {
		return 2
	}
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// ErrPeerClosed is WaitMore's error when the client closed its side with a
// frame cut short: the rest will not come.
var ErrPeerClosed = errors.New("wsaccept: the client closed its side in the middle of a frame")

// WaitMore waits until more has arrived than the last Peek saw, or the
// connection has ended (ErrPeerClosed when the client closed its side
// behind the bytes seen), failed or been closed; it reads nothing. It
// waits as any network read does, in the runtime's poller.
func (s *Socket) WaitMore() error {
	bp := roundBufs.Get().(*[]byte)
	defer roundBufs.Put(bp)
	return waitMore(s.rc, *bp, s.peeked)
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
