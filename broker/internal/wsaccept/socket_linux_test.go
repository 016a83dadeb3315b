package wsaccept

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/internal/tcpinfo"
)

// segsOut is how many data segments the kernel has sent on c.
func segsOut(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	return tcpinfo.Of(t, c).Data_segs_out
}

// accepted is the server's side of a WebSocket accepted through a Socket.
type accepted struct {
	ws   *websocket.Conn
	sock *Socket
}

// acceptPair accepts a WebSocket through a Socket (its pongs reported to
// OnPong when pongs is set) and dials it; both close with the test.
func acceptPair(ctx context.Context, t *testing.T, pongs bool) (accepted, *websocket.Conn) {
	t.Helper()
	got := make(chan accepted, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sock := new(Socket)
		var opts *websocket.AcceptOptions
		if pongs {
			opts = &websocket.AcceptOptions{OnPongReceived: func(context.Context, []byte) { sock.OnPong() }}
		}
		ws, err := websocket.Accept(SmallBuffers{ResponseWriter: w, Socket: sock}, r, opts)
		if err != nil {
			t.Error(err)
			return
		}
		got <- accepted{ws, sock}
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CloseNow() })
	a := <-got
	t.Cleanup(func() { a.ws.CloseNow() })
	return a, client
}

// TestFrameInOneSegment: a frame written through WriteFrame leaves the
// server in one TCP segment (one write) and arrives whole. Before Socket, a
// frame of 508 bytes or more left in two: the header and the payload's
// first bytes from the 512-byte buffer, then the rest.
func TestFrameInOneSegment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, client := acceptPair(ctx, t, false)
	client.SetReadLimit(1 << 20)
	if _, ok := a.sock.Conn().(syscall.Conn); !ok {
		t.Fatalf("hijacked connection %T has no file descriptor", a.sock.Conn())
	}
	// Around the write buffer's size: the header and the payload's start
	// fill it, and the rest of the frame follows it in the same writev.
	for _, size := range []int{10, 124, 125, 126, 127, 128, 200, 252, 254, 256, 380, 1000, 7000, 16000} {
		frame := bytes.Repeat([]byte{'x'}, size)
		frame[0], frame[size-1] = 'a', 'z'
		before := segsOut(t, a.sock.Conn())
		if err := a.sock.WriteFrame(a.ws, frame, 5*time.Second); err != nil {
			t.Fatalf("write %d bytes: %v", size, err)
		}
		typ, data, err := client.Read(ctx)
		if err != nil {
			t.Fatalf("read %d bytes: %v", size, err)
		}
		if typ != websocket.MessageText || !bytes.Equal(data, frame) {
			t.Fatalf("frame of %d bytes arrived as %d bytes of type %v", size, len(data), typ)
		}
		if n := segsOut(t, a.sock.Conn()) - before; n != 1 {
			t.Errorf("frame of %d bytes left in %d segments, want 1", size, n)
		}
	}
	// Frames larger than a segment still arrive whole, and the connection
	// still answers pings (the library's own writes go through Socket).
	big := bytes.Repeat([]byte("0123456789"), 50000)
	if err := a.sock.WriteFrame(a.ws, big, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, data, err := client.Read(ctx); err != nil || !bytes.Equal(data, big) {
		t.Fatalf("big frame: %d bytes, %v", len(data), err)
	}
	go func() { _, _, _ = a.ws.Read(ctx) }()
	go func() { _, _, _ = client.Read(ctx) }()
	if err := client.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// TestPing: Ping sends an empty ping frame between the connection's
// frames, never in the middle of one or ahead of a held 101, and the
// client's pong reaches OnPong through the library's reader.
func TestPing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, client := acceptPair(ctx, t, true)
	// The server's reader notes the pong; the client's answers the ping
	// as it reads the frames around it.
	go func() { _, _, _ = a.ws.Read(ctx) }()
	if a.sock.LastPong() != 0 {
		t.Fatal("a pong before any ping")
	}
	before := time.Now().UnixNano()
	if err := a.sock.WriteFrame(a.ws, []byte("first"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.sock.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := a.sock.WriteFrame(a.ws, []byte("second"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first", "second"} {
		if _, data, err := client.Read(ctx); err != nil || string(data) != want {
			t.Fatalf("read %q, %v; want %q", data, err, want)
		}
	}
	for a.sock.LastPong() < before {
		if ctx.Err() != nil {
			t.Fatal("the pong was not noted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A frame's start kept back (a full buffer) or the 101: not now.
	a.sock.mu.Lock()
	a.sock.keep([]byte{0x81})
	a.sock.mu.Unlock()
	if err := a.sock.Ping(); err != ErrBusy {
		t.Fatalf("ping with a frame's start kept back: %v, want ErrBusy", err)
	}
	a.sock.mu.Lock()
	a.sock.dropHeld()
	a.sock.mu.Unlock()
	// A failed socket fails the ping; one without a descriptor (TLS) is
	// pinged by the library.
	_ = a.sock.Conn().Close()
	if err := a.sock.Ping(); err == nil {
		t.Fatal("ping on a closed socket succeeded")
	}
	if err := new(Socket).Ping(); err != ErrNoPing {
		t.Fatalf("ping without a descriptor: %v, want ErrNoPing", err)
	}
}
