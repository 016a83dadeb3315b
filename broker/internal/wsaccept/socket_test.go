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

// TestHeldBufferGoesOutFirst: a full buffer kept back (a frame of exactly
// BufSize bytes, before its Flush) leaves ahead of the next frame the
// library writes itself, here its answer to the client's close: nothing is
// lost or reordered.
func TestHeldBufferGoesOutFirst(t *testing.T) {
	ws, sock, client := acceptPipe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	frame := bytes.Repeat([]byte{'h'}, BufSize-4) // with its header: one full buffer
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		t.Fatal(err)
	}
	sock.mu.Lock()
	held := sock.held != nil
	sock.mu.Unlock()
	if !held {
		t.Fatal("a frame that fills the buffer exactly was not kept back")
	}
	go func() { _, _, _ = ws.Read(ctx) }() // the server reads, and answers the close
	// A close frame with status 1000, masked with a zero key.
	if _, err := client.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := append([]byte{0x81, 126, byte((BufSize - 4) >> 8), byte((BufSize - 4) & 0xff)}, frame...)
	want = append(want, 0x88)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("on the wire: % x…, want the held frame, then the close", got[:8])
	}
}
