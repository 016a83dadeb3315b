package broker_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/tcpinfo"
	"github.com/presenced/presenced/protocol"
)

// TestHelloLeavesWithTheUpgrade: the server speaks first on a presence
// WebSocket, so its 101 response waits for the hello and both reach the
// client in one TCP segment, one write and one wake-up on each side instead
// of two. Before, the 101 left on its own when the library hijacked the
// connection, and the hello followed once the session was stored.
func TestHelloLeavesWithTheUpgrade(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /v1/ws HTTP/1.1\r\nHost: presenced\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: %s\r\nAuthorization: Bearer %s\r\n\r\n", protocol.Subprotocol, userJWT(t, "a", time.Hour))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		resp.Header.Get("Sec-WebSocket-Protocol") != protocol.Subprotocol || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	// An unmasked text frame of under 126 bytes: 0x81, the length, the payload.
	var head [2]byte
	if _, err := br.Read(head[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Read(head[1:]); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || head[1] >= 126 {
		t.Fatalf("first frame header % x", head)
	}
	payload := make([]byte, head[1])
	if _, err := br.Read(payload); err != nil || br.Buffered() != 0 {
		t.Fatalf("payload: %v, %d bytes more", err, br.Buffered())
	}
	f, err := protocol.DecodeServerFrame(payload)
	if err != nil || f.Op != protocol.OpHello {
		t.Fatalf("first frame %q: %v", payload, err)
	}
	if n := tcpinfo.Of(t, c).Data_segs_in; n != 1 {
		t.Fatalf("the 101 and the hello arrived in %d segments, want 1", n)
	}
}
