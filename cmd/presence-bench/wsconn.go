package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/presenced/presenced/protocol"
)

// Each loopback source address gives about 28,000 ephemeral ports toward
// one server port, so connections are spread over 127.0.0.2, 127.0.0.3, ...
// A dialer holds the HTTP client of one source address.

// sourceAddr returns the n-th loopback source address counting from
// 127.0.0.2.
func sourceAddr(n int) string {
	v := 2 + n // 127.0.0.2 is n = 0
	return fmt.Sprintf("127.%d.%d.%d", (v>>16)&0xff, (v>>8)&0xff, v&0xff)
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT socket option.
const ipBindAddressNoPort = 24

// bindNoPort makes bind choose only the address and leave the port to
// connect. Without it, binding a source address picks a port unused by
// any socket of that address, in a search that slows down as thousands of
// ports are taken or in TIME_WAIT from a previous run; connect picks a
// port unused toward this destination, quickly.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	return errors.Join(err, serr)
}

// newSourceClient returns an HTTP client whose connections leave from
// source ("" for the system's choice), for WebSocket handshakes only.
func newSourceClient(source string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
		d.Control = bindNoPort
	}
	return &http.Client{Transport: &upgradeTransport{
		dial: d.DialContext,
		tls:  &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}}
}

// upgradeTransport makes WebSocket handshakes over plain HTTP on the
// caller's goroutine: it dials, writes the request, reads the response and
// hands the connection to the WebSocket library as the response's body.
// net/http's Transport starts a reading and a writing goroutine for every
// connection and books it into a pool that upgraded connections never
// use; the bench shares the machine with the server it measures, and that
// work was a sixth of its CPU in a reconnect storm. https goes through tls,
// a plain net/http Transport.
type upgradeTransport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tls  http.RoundTripper
}

func (t *upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return t.tls.RoundTrip(req)
	}
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// A cancelled handshake ends the blocked write or read at once.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(c, 512)
	resp, err := t.handshake(c, br, req)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return resp, err
	}
	resp.Body = upgradedConn{br, c}
	return resp, nil
}

// handshake sends req and reads the response; a refusal's body is read
// whole, under the same watch of the context.
func (t *upgradeTransport) handshake(c net.Conn, br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if err := req.Write(c); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// upgradedConn is an upgraded connection: reads start with what the
// handshake's reader holds beyond the response.
type upgradedConn struct {
	r *bufio.Reader
	net.Conn
}

func (u upgradedConn) Read(p []byte) (int, error) { return u.r.Read(p) }

// userToken mints a user JWT (HS256, sub = user) as presenced accepts it.
func userToken(secret []byte, user string, exp time.Time) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString(secret)
}

// frameBufs recycles read buffers; buffers that grew past 1 MiB (big
// snapshots) are dropped rather than kept.
var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readFrame reads one whole message into a pooled buffer. The caller
// returns the buffer with putFrame.
func readFrame(ctx context.Context, ws *websocket.Conn) (*bytes.Buffer, error) {
	_, r, err := ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	buf := frameBufs.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		putFrame(buf)
		return nil, err
	}
	return buf, nil
}

func putFrame(buf *bytes.Buffer) {
	if buf.Cap() <= 1<<20 {
		frameBufs.Put(buf)
	}
}

// subscribeFrame encodes a subscribe request, resuming from rev and epoch
// when given.
func subscribeFrame(id uint64, group string, rev uint64, epoch string) []byte {
	return protocol.AppendClientFrame(nil, protocol.ClientFrame{Op: protocol.OpSubscribe, ID: id, Group: group, Rev: rev, Epoch: epoch})
}

// awaitInitial reads frames until the reply to subscribe request id: a
// snapshot or resumed frame. It returns the reply's header and its size;
// with fn set, it gives fn the reply's bytes first.
func awaitInitial(ctx context.Context, ws *websocket.Conn, id uint64, fn func([]byte)) (frameHeader, int, error) {
	for {
		buf, err := readFrame(ctx, ws)
		if err != nil {
			return frameHeader{}, 0, err
		}
		b := buf.Bytes()
		switch frameOp(b) {
		case protocol.OpSnapshot, protocol.OpResumed:
			h, err := parseHeader(b)
			n := len(b)
			if err == nil && h.ID == id && fn != nil {
				fn(b)
			}
			putFrame(buf)
			if err != nil {
				return h, n, err
			}
			if h.ID == id {
				return h, n, nil
			}
		case protocol.OpError:
			f, _ := protocol.DecodeServerFrame(b)
			putFrame(buf)
			if f.ID == id {
				return frameHeader{}, 0, fmt.Errorf("subscribe: %s: %s", f.Code, f.Message)
			}
		default:
			putFrame(buf)
		}
	}
}

// headerUint reads the number of the first "key": in b, which for frames
// written by the protocol encoders is the header's field.
func headerUint(b []byte, key string) (uint64, bool) {
	k := []byte(`"` + key + `":`)
	i := bytes.Index(b, k)
	if i < 0 {
		return 0, false
	}
	num := b[i+len(k):]
	j := 0
	for j < len(num) && num[j] >= '0' && num[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(num[:j]), 10, 64)
	return v, err == nil
}
