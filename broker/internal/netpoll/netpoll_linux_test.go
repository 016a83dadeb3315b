package netpoll

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// pair is a connected TCP pair on loopback; the server side is watched.
func pair(t *testing.T) (client net.Conn, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return client, c.(*net.TCPConn)
}

func rawOf(t *testing.T, c syscall.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func wantCall(t *testing.T, calls <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-calls:
	case <-time.After(5 * time.Second):
		t.Fatalf("no callback %s", what)
	}
}

func wantNoCall(t *testing.T, calls <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-calls:
		t.Fatalf("a callback %s", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// watched is a poller, closed at the test's end, watching the server side
// of a new TCP pair; its callbacks are sent on calls.
func watched(t *testing.T) (p *Poller, client net.Conn, server *net.TCPConn, w *Watch, calls chan struct{}) {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	client, server = pair(t)
	calls = make(chan struct{}, 10)
	if w, err = p.Watch(rawOf(t, server), func() { calls <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	return p, client, server, w, calls
}

// TestWatchCallsOncePerArm: a watch calls back when its socket turns
// readable, once until it is armed again, at once when armed with data
// still unread, never once stopped, and it leaves with a closed socket.
func TestWatchCallsOncePerArm(t *testing.T) {
	p, client, server, w, calls := watched(t)
	wantNoCall(t, calls, "with nothing to read")
	if _, err := client.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	wantCall(t, calls, "once data arrived")
	if _, err := client.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	wantNoCall(t, calls, "before the watch was armed again")
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	wantCall(t, calls, "when armed with data unread")
	buf := make([]byte, 8)
	if n, err := server.Read(buf); err != nil || n != 2 {
		t.Fatalf("read %d, %v", n, err)
	}
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	wantNoCall(t, calls, "after everything was read")
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	wantCall(t, calls, "when the peer closed")

	w.Stop()
	if n := watchCount(p); n != 0 {
		t.Fatalf("%d watches after Stop", n)
	}

	// A closed socket leaves the poller; arming it fails.
	client2, server2 := pair(t)
	w2, err := p.Watch(rawOf(t, server2), func() { calls <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	server2.Close()
	if err := w2.Arm(); err == nil {
		t.Fatal("armed a watch of a closed socket")
	}
	_, _ = client2.Write([]byte("x"))
	wantNoCall(t, calls, "for a closed socket")
	w2.Stop()
}

// TestCloseStopsCallbacks: once Close returns, no callback runs, and new
// watches are refused.
func TestCloseStopsCallbacks(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	client, server := pair(t)
	calls := make(chan struct{}, 10)
	if _, err := p.Watch(rawOf(t, server), func() { calls <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_, _ = client.Write([]byte("x"))
	wantNoCall(t, calls, "after Close")
	if _, err := p.Watch(rawOf(t, server), func() {}); err != ErrClosed {
		t.Fatalf("Watch after Close: %v", err)
	}
}

// TestFailedPollerCallsEveryWatchBack: a poller whose goroutine stopped by
// itself (here: its epoll descriptor closed under it) calls every watch
// back once; their sockets cannot be armed again (ErrClosed, so that their
// owners read them another way) and new watches are refused. Before, its
// watches waited for callbacks that never came.
func TestFailedPollerCallsEveryWatchBack(t *testing.T) {
	p, _, server, w, calls := watched(t)
	p.closeOnce.Do(func() { p.file.Close() })
	wantCall(t, calls, "when the poller failed")
	if err := w.Arm(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Arm after a failure: %v", err)
	}
	if _, err := p.Watch(rawOf(t, server), func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after a failure: %v", err)
	}
}

// watchCount is the number of watches registered with p.
func watchCount(p *Poller) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.watches)
}
