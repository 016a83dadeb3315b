package wsaccept

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"time"
)

// BufSize is the size of the read buffer a WebSocket keeps for its life,
// and of its write buffer when it has no Socket. net/http hands a hijacked
// connection 4 KiB of each; frames of a presence session are small.
const BufSize = 512

// writeBufSize is the write buffer of a WebSocket with a Socket, which
// sends a frame larger than the buffer in one write all the same. It is
// larger than any control frame (2 + 125 bytes), so the library's own
// frames never fill it, and no frame fills it exactly: a frame of up to 125
// payload bytes takes at most 127, one of 126 or more at least 130. So a
// full buffer always has the rest of its frame behind it (see Socket).
const writeBufSize = 128

// SmallBuffers wraps the ResponseWriter given to websocket.Accept: its
// Hijack returns small buffers instead of net/http's, which would otherwise
// live as long as the connection does, and attaches the connection to
// Socket, through which the buffered writer writes (see Socket).
//
// With HoldUpgrade set (and a Socket), the 101 response is not sent when
// the library writes its header: Hijack puts it in the returned writer's
// buffer, and it leaves with the connection's first frame, in one write
// and one TCP segment. Only for a protocol whose server speaks first: a
// client sends nothing before it has the 101.
//
// With Polled set (and a Socket), the connection is read in rounds within a
// budget (Socket.SetBudget, Socket.Peek), and the library's buffered reader
// gets the smallest buffer bufio has: the Socket buffers a round's bytes in
// a pooled buffer instead, for the round only. Reads without a budget (a
// close handshake, a connection that fell back to a reader goroutine) take
// a read from the connection per few header bytes.
type SmallBuffers struct {
	http.ResponseWriter
	Socket      *Socket
	HoldUpgrade bool
	Polled      bool
}

// polledReadSize is bufio's smallest buffer.
const polledReadSize = 16

// WriteHeader implements http.ResponseWriter.
func (w SmallBuffers) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols && w.HoldUpgrade && w.Socket != nil {
		w.Socket.upgrade = true // the handler's goroutine, as Hijack's
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Hijack implements http.Hijacker.
func (w SmallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		c.Close()
		return nil, nil, err
	}
	var out io.Writer = c
	wsize := BufSize
	if w.Socket != nil {
		wsize = writeBufSize
		w.Socket.attach(c)
		out = w.Socket
	}
	_ = c.SetDeadline(time.Time{}) // the HTTP server's read deadlines end with the request
	// What the client sent right after its request (a pipelined first
	// frame) sits in net/http's buffer. It must be in the returned
	// reader's buffer, not behind it: coder/websocket takes what the
	// reader has buffered and resets it onto the connection, dropping
	// anything held by a reader underneath.
	size := BufSize
	var r io.Reader = c
	n := brw.Reader.Buffered()
	if w.Socket != nil {
		w.Socket.r, w.Socket.prefixed = c, n > 0
		if w.Polled && w.Socket.Pollable() {
			size = polledReadSize
		}
	}
	if n > 0 {
		b, _ := brw.Reader.Peek(n)
		size = max(size, n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), c)
	}
	br := bufio.NewReaderSize(r, size)
	if _, err := br.Peek(n); err != nil {
		c.Close()
		return nil, nil, err
	}
	bw := bufio.NewWriterSize(out, wsize)
	if w.Socket != nil && w.Socket.upgrade {
		// As net/http writes it; the Socket sends it ahead of the first
		// frame (it is larger than the write buffer).
		h := w.Header()
		if _, ok := h["Date"]; !ok {
			h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
		}
		s := w.Socket
		s.mu.Lock()
		s.keep(nil)
		b := bytes.NewBuffer(*s.held)
		b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		_ = h.Write(b)
		b.WriteString("\r\n")
		*s.held, s.heldUpgrade = b.Bytes(), true
		s.mu.Unlock()
	}
	if w.Socket != nil {
		// coder/websocket reads through the returned connection once the
		// buffered bytes are read: through the Socket, for its budget.
		return readsThrough{c, w.Socket}, bufio.NewReadWriter(br, bw), nil
	}
	return c, bufio.NewReadWriter(br, bw), nil
}

// readsThrough is the hijacked connection with its reads going through a
// Socket.
type readsThrough struct {
	net.Conn
	s *Socket
}

func (c readsThrough) Read(p []byte) (int, error) { return c.s.Read(p) }
