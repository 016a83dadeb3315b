package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/protocol"
)

// sessionGoroutines returns the stacks of the goroutines in a WebSocket
// session's code: its reader, or an op being answered.
func sessionGoroutines() [][]byte {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out [][]byte
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("broker.(*wsConn)")) {
			out = append(out, g)
		}
	}
	return out
}

// waitIdle waits up to 5 s for the WebSocket sessions' goroutines to be
// gone, and returns how many are left, logging one's stack.
func waitIdle(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	gs := sessionGoroutines()
	for len(gs) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		gs = sessionGoroutines()
	}
	if len(gs) > 0 {
		t.Logf("%d goroutines in WebSocket sessions' code, such as\n%s", len(gs), gs[0])
	}
	return len(gs)
}

// TestIdleConnectionsHaveNoReaderGoroutine: a subscribed WebSocket with
// nothing to read costs no goroutine. Each had a reader goroutine parked
// in coder/websocket's frame header read, with a 4 KiB stack: a fifth of
// what an idle connection cost the server. The server's poller now tells
// when one has something to read, and a worker reads it.
func TestIdleConnectionsHaveNoReaderGoroutine(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	const conns = 40
	var cs []*wsClient
	for i := range conns {
		c := mustDial(t, s, userJWT(t, []string{"a", "b"}[i%2], time.Hour))
		if f := c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"}); f.Op != protocol.OpSnapshot {
			t.Fatalf("subscribe answered %+v", f)
		}
		cs = append(cs, c)
	}
	// The last ops' goroutines are done once their replies are read; the
	// writers that fan out the sessions' online changes may still run.
	if n := waitIdle(t); n > 0 {
		t.Fatalf("%d idle subscribed connections keep %d goroutines in their sessions' code", conns, n)
	}
	// Idle, they still answer, each in turn and all at once.
	for i, c := range cs {
		if f := c.reply(protocol.ClientFrame{Op: protocol.OpPing}); f.Op != protocol.OpPong {
			t.Fatalf("connection %d answered ping with %+v", i, f)
		}
	}
	ids := make([]uint64, len(cs))
	for i, c := range cs {
		ids[i] = c.send(protocol.ClientFrame{Op: protocol.OpPing})
	}
	for i, c := range cs {
		c.until(func(f protocol.ServerFrame) bool { return f.ID == ids[i] && f.Op == protocol.OpPong })
	}
}

// rawWS is a client that speaks WebSocket frames by hand, to send what a
// library does not: frames cut anywhere, fragments, control frames.
type rawWS struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, s *testServer, user string) *rawWS {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET /v1/ws HTTP/1.1\r\nHost: presenced\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: " + protocol.Subprotocol + "\r\n" +
		"Authorization: Bearer " + userJWT(t, user, time.Hour) + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	r := &rawWS{t: t, conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if op, f := r.frame(); op != 0x1 || f.Op != protocol.OpHello {
		t.Fatalf("first frame %#x %+v, want hello", op, f)
	}
	return r
}

// frame reads the next frame: its opcode and, for a text frame, the
// decoded server frame.
func (r *rawWS) frame() (byte, protocol.ServerFrame) {
	r.t.Helper()
	op, payload, err := readFrame(r.br)
	if err != nil {
		r.t.Fatal(err)
	}
	if op != 0x1 {
		return op, protocol.ServerFrame{Message: string(payload)}
	}
	f, err := protocol.DecodeServerFrame(payload)
	if err != nil {
		r.t.Fatal(err)
	}
	return op, f
}

// write sends the pieces with a pause between them, so that each arrives
// on its own.
func (r *rawWS) write(pieces ...[]byte) {
	r.t.Helper()
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := r.conn.Write(p); err != nil {
			r.t.Fatal(err)
		}
	}
}

// clientFrame is a masked client frame with the given first byte (FIN and
// opcode).
func clientFrame(first byte, payload []byte) []byte {
	f := maskedText(payload)
	f[0] = first
	return f
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func pingOp(id int) []byte {
	return maskedText([]byte(`{"op":"ping","id":` + strconv.Itoa(id) + `}`))
}

// wantPong reads frames until the pong op of id, and fails on a close.
func (r *rawWS) wantPong(id uint64) {
	r.t.Helper()
	for {
		op, f := r.frame()
		switch {
		case op == 0x8:
			r.t.Fatalf("closed: %q", f.Message)
		case op == 0x1 && f.Op == protocol.OpPong && f.ID == id:
			return
		}
	}
}

// TestPolledConnectionReadsWhatArrives: a connection read by the poller
// reads whatever way its client's bytes arrive: several frames at once, a
// frame cut in its payload, a long one, a fragmented message with a
// control frame between its fragments, a ping, a frame cut in its header,
// a fragment on its own, and a close.
func TestPolledConnectionReadsWhatArrives(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	r := dialRaw(t, s, "a")

	r.write(append(append(pingOp(1), pingOp(2)...), pingOp(3)...))
	r.wantPong(1)
	r.wantPong(2)
	r.wantPong(3)

	f := pingOp(4)
	r.write(f[:9], f[9:]) // the payload cut
	r.wantPong(4)

	// A long op: a 126-length header, and more than one peek's worth.
	long := maskedText([]byte(`{"op":"query","id":6,"users":["` + strings.Repeat("x", 5000) + `"]}`))
	r.write(long[:3000], long[3000:])
	for {
		op, f := r.frame()
		if op == 0x1 && f.ID == 6 {
			break
		}
	}

	// A message in two fragments, a ping between them.
	msg := []byte(`{"op":"ping","id":7}`)
	first := clientFrame(0x01, msg[:6])     // text, not final
	ping := clientFrame(0x89, []byte("hi")) // ping
	last := clientFrame(0x80, msg[6:])      // continuation, final
	r.write(cat(first, ping, last))
	gotPong, gotOp := false, false
	for !gotPong || !gotOp {
		op, f := r.frame()
		switch {
		case op == 0xA && f.Message == "hi":
			gotPong = true
		case op == 0x1 && f.Op == protocol.OpPong && f.ID == 7:
			gotOp = true
		case op == 0x8:
			t.Fatalf("closed: %q", f.Message)
		}
	}

	// A ping on its own, then an op.
	r.write(clientFrame(0x89, []byte("again")))
	if op, f := r.frame(); op != 0xA || f.Message != "again" {
		t.Fatalf("ping answered with %#x %q", op, f.Message)
	}
	r.write(pingOp(8))
	r.wantPong(8)
	// Each of the above was read by a round, and the connection is idle
	// again.
	if n := waitIdle(t); n > 0 {
		t.Fatalf("the connection keeps %d goroutines", n)
	}

	// A header cut after its first byte: the connection waits for the
	// rest, then is idle again. (A header cut by the end of a TCP segment
	// is no rarity: the connection used to fall back to a reader
	// goroutine for good.)
	f = pingOp(9)
	r.write(f[:1], f[1:])
	r.wantPong(9)
	if n := waitIdle(t); n > 0 {
		t.Fatalf("after a cut header, the connection keeps %d goroutines", n)
	}
	// The first fragment of a message on its own: a reader goroutine
	// takes the connection over, since control frames may come between
	// the fragments.
	msg = []byte(`{"op":"ping","id":10}`)
	r.write(clientFrame(0x01, msg[:6]), clientFrame(0x80, msg[6:]))
	r.wantPong(10)

	// The client closes: the server answers and lets the session go.
	closing := make([]byte, 2)
	binary.BigEndian.PutUint16(closing, 1000)
	r.write(clientFrame(0x88, closing))
	for {
		op, _ := r.frame()
		if op == 0x8 {
			break
		}
	}
	waitWebSockets(t, s, 0)
}

func waitWebSockets(t *testing.T, s *testServer, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.WebSockets() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the node holds %d WebSocket sessions, want %d", s.WebSockets(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleConnectionClosedByTheServer: a connection nothing reads, closed
// by the server (a node going away, a silent client), is cleaned up even
// when its client never answers the close: no reader comes to find it
// closed.
func TestIdleConnectionClosedByTheServer(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) { c.Limits.IdleTimeout = 900 * time.Millisecond })
	seedTeam(t, s)
	// A client that reads (and so answers pings) stays; one that reads
	// nothing is closed as idle and let go.
	alive := mustDial(t, s, userJWT(t, "b", time.Hour))
	dialRaw(t, s, "a")
	waitWebSockets(t, s, 1)
	if f := alive.reply(protocol.ClientFrame{Op: protocol.OpPing}); f.Op != protocol.OpPong {
		t.Fatalf("ping answered with %+v", f)
	}
	// Going away: the client does not answer the close either.
	dialRaw(t, s, "c")
	waitWebSockets(t, s, 2)
	s.DropWebSockets()
	waitWebSockets(t, s, 0)
}

// closedWith waits for c's connection to close and returns the close code
// its client got (-1 for none: a connection cut without a close frame).
func closedWith(t *testing.T, c *wsClient) int {
	t.Helper()
	select {
	case err := <-c.closed:
		return int(websocket.CloseStatus(err))
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed")
	}
	return 0
}

// TestServerCloseCodeReachesTheClient: when an op ends the connection with
// a close code of the protocol, the client gets that code. The round that
// read the op dropped the socket at once, before the close frame left (the
// client saw 1006); a reader goroutine had given the close time to leave
// while it cleaned up the session.
func TestServerCloseCodeReachesTheClient(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	for i := range 10 {
		c := mustDial(t, s, userJWT(t, "a", time.Hour))
		_ = c.c.Write(context.Background(), websocket.MessageBinary, []byte("binary"))
		if code := closedWith(t, c); code != protocol.CloseProtocolError {
			t.Fatalf("connection %d: a binary frame closed it with %d, want %d", i, code, protocol.CloseProtocolError)
		}
	}
	c := mustDial(t, s, userJWT(t, "b", time.Hour))
	for range 200 {
		f, _ := protocol.EncodeClientFrame(protocol.ClientFrame{Op: protocol.OpPing})
		if c.c.Write(context.Background(), websocket.MessageText, f) != nil {
			break
		}
	}
	if code := closedWith(t, c); code != protocol.CloseRateLimited {
		t.Fatalf("a flood of ops closed the connection with %d, want %d", code, protocol.CloseRateLimited)
	}
}

// TestKilledNodeLetsIdleConnectionsGo: a node killed at once drops its
// sockets, and an idle connection, which no reader finds closed, is let go
// all the same: its session and subscriber are ended and the node holds
// no WebSocket after.
func TestKilledNodeLetsIdleConnectionsGo(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	for i := range 5 {
		c := mustDial(t, s, userJWT(t, []string{"a", "b"}[i%2], time.Hour))
		c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	}
	waitIdle(t)
	s.Kill()
	waitWebSockets(t, s, 0)
}

// answerPings reads frames until match returns true, answering the
// server's pings as a client must; it fails on a close unless match takes
// it.
func (r *rawWS) answerPings(match func(op byte, f protocol.ServerFrame) bool) {
	r.t.Helper()
	for {
		op, f := r.frame()
		if match(op, f) {
			return
		}
		switch op {
		case 0x9:
			r.write(clientFrame(0x8A, []byte(f.Message)))
		case 0x8:
			r.t.Fatalf("closed: %q", f.Message)
		}
	}
}

// TestPolledConnectionHostileFrames: frames a poller cannot read ahead of
// the library are still answered as a reader goroutine would: a header
// cut short and then the client's FIN (released at once, not after the
// idle timeout), a close frame in the middle of a fragmented message
// (echoed at once), a header with a length no frame can have (refused at
// once), and a fragmented message sent slowly while the server pings (the
// pongs read, the connection kept).
func TestPolledConnectionHostileFrames(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	base := s.WebSockets()

	cut := dialRaw(t, s, "a")
	waitWebSockets(t, s, base+1)
	cut.write([]byte{0x81, 0xfe, 0x00})
	time.Sleep(50 * time.Millisecond)
	if err := cut.conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	waitWebSocketsWithin(t, s, base, 2*time.Second)

	mid := dialRaw(t, s, "a")
	closing := make([]byte, 2)
	binary.BigEndian.PutUint16(closing, 1000)
	mid.write(clientFrame(0x01, []byte(`{"op"`)))
	mid.write(clientFrame(0x88, closing))
	_ = mid.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if op, _ := mid.frame(); op != 0x8 {
		t.Fatalf("a close in the middle of a message answered with %#x, want a close", op)
	}

	huge := dialRaw(t, s, "a")
	huge.write([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	_ = huge.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := readFrame(huge.br); err != nil {
			break // closed, or the deadline: the count below tells
		}
	}
	waitWebSocketsWithin(t, s, base, 2*time.Second)

	quick := startServer(t, "", func(c *broker.Config) { c.Limits.IdleTimeout = 900 * time.Millisecond })
	seedTeam(t, quick)
	slow := dialRaw(t, quick, "a")
	msg := []byte(`{"op":"ping","id":11}`)
	slow.write(clientFrame(0x01, msg[:6]))
	// Three idle timeouts, answering the server's pings meanwhile.
	deadline := time.Now().Add(2700 * time.Millisecond)
	_ = slow.conn.SetReadDeadline(deadline)
	pinged := false
	for time.Now().Before(deadline.Add(-100 * time.Millisecond)) {
		op, payload, err := readFrame(slow.br)
		if err != nil {
			break
		}
		switch op {
		case 0x9:
			pinged = true
			slow.write(clientFrame(0x8A, payload))
		case 0x8:
			t.Fatalf("closed while its message was arriving, with %d", binary.BigEndian.Uint16(payload))
		}
	}
	if !pinged {
		t.Fatal("the server sent no ping: the test proves nothing")
	}
	_ = slow.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	slow.write(clientFrame(0x80, msg[6:]))
	slow.answerPings(func(op byte, f protocol.ServerFrame) bool { return op == 0x1 && f.Op == protocol.OpPong && f.ID == 11 })
}

func waitWebSocketsWithin(t *testing.T, s *testServer, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for s.WebSockets() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the node holds %d WebSocket sessions after %v, want %d", s.WebSockets(), d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPingedIdleClient: the server pings an idle client, an empty ping
// frame a third of the idle timeout into its silence, at most one ping
// in flight; a client that answers stays for as long as it answers, one
// that does not is closed as idle (4010) within the timeout and its
// session let go.
func TestPingedIdleClient(t *testing.T) {
	const idle = 900 * time.Millisecond
	s := startServer(t, "", func(c *broker.Config) { c.Limits.IdleTimeout = idle })
	seedTeam(t, s)
	base := s.WebSockets()
	answering, silent := dialRaw(t, s, "a"), dialRaw(t, s, "b")
	waitWebSockets(t, s, base+2)
	start := time.Now()

	// The silent client reads what comes and answers nothing.
	closed := make(chan []byte, 1)
	pingsToSilent := 0
	go func() {
		for {
			op, payload, err := readFrame(silent.br)
			if err != nil {
				closed <- nil
				return
			}
			switch op {
			case 0x9:
				pingsToSilent++
			case 0x8:
				closed <- payload
				return
			}
		}
	}()
	pings := 0
	for time.Since(start) < 4*idle {
		_ = answering.conn.SetReadDeadline(time.Now().Add(idle))
		op, payload, err := readFrame(answering.br)
		if err != nil {
			t.Fatalf("the answering client after %v: %v", time.Since(start), err)
		}
		switch op {
		case 0x9:
			if len(payload) != 0 {
				t.Fatalf("ping with a payload of %d bytes", len(payload))
			}
			pings++
			answering.write(clientFrame(0x8A, payload))
		case 0x8:
			t.Fatalf("the answering client was closed after %v: %q", time.Since(start), payload)
		}
	}
	if pings < 3 {
		t.Fatalf("%d pings in %v of silence, want one every third of %v", pings, 4*idle, idle)
	}
	select {
	case payload := <-closed:
		if len(payload) < 2 || binary.BigEndian.Uint16(payload) != protocol.CloseIdleTimeout {
			t.Fatalf("the silent client was closed with %q, want %d", payload, protocol.CloseIdleTimeout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the silent client was not closed")
	}
	if pingsToSilent != 1 {
		t.Fatalf("%d pings to the client that answered none, want 1", pingsToSilent)
	}
	waitWebSockets(t, s, base+1)
}
