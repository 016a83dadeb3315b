package broker_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

// maskedText is a client's WebSocket text frame (masked, as RFC 6455
// requires of clients) carrying payload.
func maskedText(payload []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(0x81) // FIN, text
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	default:
		b.WriteByte(0x80 | 126)
		_ = binary.Write(&b, binary.BigEndian, uint16(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b.Write(key[:])
	for i, c := range payload {
		b.WriteByte(c ^ key[i%4])
	}
	return b.Bytes()
}

// readFrame reads one unmasked server frame's payload (no fragmentation:
// presenced writes each frame whole).
func readFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l uint16
		if err := binary.Read(r, binary.BigEndian, &l); err != nil {
			return 0, nil, err
		}
		n = uint64(l)
	case 127:
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0] & 0x0f, payload, err
}

// TestWSFirstFramePipelined writes the upgrade request and the first
// frame in one TCP segment, as a client that does not wait for the 101 may:
// the frame must be read, not dropped with the bytes net/http had
// buffered (it was closed with 1002 "unexpected rsv bits").
func TestWSFirstFramePipelined(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	for i := range 20 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		var key [16]byte
		_, _ = rand.Read(key[:])
		req := "GET /v1/ws HTTP/1.1\r\nHost: " + strings.TrimPrefix(s.URL, "http://") + "\r\n" +
			"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\n" +
			"Sec-WebSocket-Protocol: " + protocol.Subprotocol + "\r\n" +
			"Authorization: Bearer " + userJWT(t, "a", time.Hour) + "\r\n\r\n"
		segment := append([]byte(req), maskedText([]byte(`{"op":"ping","id":7}`))...)
		if _, err := conn.Write(segment); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade answered %d", resp.StatusCode)
		}
		var ops []string
		for len(ops) < 2 {
			op, payload, err := readFrame(br)
			if err != nil {
				t.Fatalf("connection %d: after %v: %v", i, ops, err)
			}
			if op == 0x8 { // close
				code := binary.BigEndian.Uint16(payload)
				t.Fatalf("connection %d closed with %d %q after %v", i, code, payload[2:], ops)
			}
			f, err := protocol.DecodeServerFrame(payload)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, string(f.Op))
		}
		if ops[0] != string(protocol.OpHello) || ops[1] != string(protocol.OpPong) {
			t.Fatalf("connection %d: frames %v, want hello then pong", i, ops)
		}
	}
}
