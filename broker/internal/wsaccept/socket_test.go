package wsaccept

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pipeWriter is a ResponseWriter whose Hijack hands over one end of a pipe.
type pipeWriter struct {
	h    http.Header
	conn net.Conn
}

func (w *pipeWriter) Header() http.Header         { return w.h }
func (w *pipeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *pipeWriter) WriteHeader(int)             {}
func (w *pipeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// acceptPipe accepts a WebSocket on one end of a pipe and returns the other.
func acceptPipe(t *testing.T) (*websocket.Conn, *Socket, net.Conn) {
	t.Helper()
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	sock := new(Socket)
	ws, err := websocket.Accept(SmallBuffers{ResponseWriter: &pipeWriter{h: http.Header{}, conn: server}, Socket: sock}, r,
		&websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	return ws, sock, client
}

// TestFailedWriteFailsTheNext: a frame cut off by its deadline fails every
// later write, so that no frame follows a cut-off one on the wire.
func TestFailedWriteFailsTheNext(t *testing.T) {
	ws, sock, client := acceptPipe(t)
	got := make(chan int, 1)
	go func() { // the client reads the frame's first 300 bytes, then stops
		n, _ := io.ReadFull(client, make([]byte, 300))
		got <- n
	}()
	if err := sock.WriteFrame(ws, bytes.Repeat([]byte{'a'}, 900), 200*time.Millisecond); err == nil {
		t.Fatal("a frame the client did not read was written")
	}
	if n := <-got; n != 300 {
		t.Fatalf("the client read %d bytes", n)
	}
	// The client reads again: whatever the server still writes arrives.
	after := make(chan int, 1)
	go func() {
		_ = client.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _ := client.Read(make([]byte, 64))
		after <- n
	}()
	if err := sock.WriteFrame(ws, []byte("hello"), time.Second); err == nil {
		t.Error("a frame was written after a cut-off one")
	}
	if n := <-after; n > 0 {
		t.Fatalf("%d bytes followed the cut-off frame", n)
	}
}

// TestNothingStaysKeptBack writes frames of every size up to a few
// buffers through the library's own Write, without WriteFrame's Flush, as
// a handler that writes to the connection directly does: each frame
// reaches the client whole, and nothing is kept back after it. A frame
// that ended with a full buffer of its own would wait there for the next
// frame.
func TestNothingStaysKeptBack(t *testing.T) {
	ws, sock, client := acceptPipe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	for size := 0; size <= 3*writeBufSize+10; size++ {
		if err := ws.Write(ctx, websocket.MessageText, bytes.Repeat([]byte{'k'}, size)); err != nil {
			t.Fatalf("write %d bytes: %v", size, err)
		}
		sock.mu.Lock()
		held := sock.held != nil
		sock.mu.Unlock()
		if held {
			t.Fatalf("a frame of %d bytes left a full buffer kept back", size)
		}
	}
}
