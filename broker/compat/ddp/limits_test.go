package ddp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/broker/compat/ddp"
	"github.com/presenced/presenced/broker/compat/ddp/ddptest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// TestRateLimit: past the ops/s budget methods and subs get Rocket.Chat's
// too-many-requests error; a client that keeps on is closed with 4008.
func TestRateLimit(t *testing.T) {
	b := newBed(t, func(c *ddpConfig) { c.OpsPerSecond = 2 })
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	var limited string
	for range 6 {
		res, _ := c.Call("UserPresence:online")
		if e := ddptest.ErrorOf(res); e != "" {
			limited = e
		}
	}
	if limited != `{"details":{"timeToReset":500},"error":"too-many-requests","errorType":"Meteor.Error","isClientSafe":true,"message":"Error, too many requests. Please slow down. You must wait 1 seconds before trying again. [too-many-requests]","reason":"Error, too many requests. Please slow down. You must wait 1 seconds before trying again."}` {
		t.Fatalf("over the limit: %s", limited)
	}
	for range 30 {
		c.Send(msg{"msg": "method", "id": "x", "method": "UserPresence:online"})
	}
	if code := c.Closed(); code != 4008 {
		t.Fatalf("closed with %d, want 4008", code)
	}
}

// TestFrameTooBig: a frame past MaxFrameBytes closes with 1009.
func TestFrameTooBig(t *testing.T) {
	b := newBed(t, func(c *ddpConfig) { c.MaxFrameBytes = 1024 })
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	c.Send(msg{"msg": "method", "id": "1", "method": "login", "params": []any{msg{"resume": strings.Repeat("x", 2048)}}})
	if code := c.Closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("closed with %d, want 1009", code)
	}
}

// TestOrigin: browsers from another site are refused unless allowed.
func TestOrigin(t *testing.T) {
	b := newBed(t, func(c *ddpConfig) { c.AllowedOrigins = []string{"https://chat.example.org"} })
	_, err := ddptest.TryDial(t, b.url+"/websocket", http.Header{"Origin": {"https://evil.example.com"}})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("foreign origin: %v", err)
	}
	ddptest.Dial(t, b.url+"/websocket", http.Header{"Origin": {"https://chat.example.org"}}).Connect()
	ddptest.Dial(t, b.url+"/websocket", nil).Connect() // apps send none
}

// TestCloseWhere: the broker's revocation hook closes the connections of a
// revoked credential with 4002; their next login fails.
func TestCloseWhere(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	bb := loggedIn(t, b, bob)
	anon := ddptest.Dial(t, b.url+"/websocket", nil)
	anon.Connect()
	tok, ok := b.store.Index().TokenByHash(membership.HashToken(b.tokens[alice]))
	if !ok {
		t.Fatal("no token")
	}
	if _, err := b.store.RevokeToken(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	if n := b.handler.CloseWhere(func(c membership.Credential) bool { return c.TokenID == tok.ID }); n != 1 {
		t.Fatalf("closed %d connections, want 1", n)
	}
	if code := a.Closed(); code != 4002 {
		t.Fatalf("closed with %d, want 4002", code)
	}
	again := ddptest.Dial(t, b.url+"/websocket", nil)
	again.Connect()
	if res, _ := again.Call("login", msg{"resume": b.tokens[alice]}); ddptest.ErrorOf(res) != errLoggedOut {
		t.Fatalf("login with the revoked token: %s", res.JSON())
	}
	bb.Send(msg{"msg": "ping", "id": "1"})
	bb.Expect("pong")
	anon.Send(msg{"msg": "ping", "id": "1"})
	anon.Expect("pong")
	b.status(alice, protocol.StatusOffline)
}

// TestCredentialExpiry: the connection closes with 4001 when the token it
// logged in with expires.
func TestCredentialExpiry(t *testing.T) {
	b := newBed(t)
	soon := time.Now().Add(1500 * time.Millisecond)
	tok := b.token(membership.TokenSpec{Name: "short", UserID: bob, Scopes: []string{membership.ScopeConnect}, ExpiresAt: &soon})
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	r := c.Login(tok)
	if exp, _ := r.Map("tokenExpires")["$date"].(float64); int64(exp) != soon.UnixMilli() {
		t.Fatalf("tokenExpires %v, want %d", r["tokenExpires"], soon.UnixMilli())
	}
	if code := c.Closed(); code != 4001 {
		t.Fatalf("closed with %d, want 4001", code)
	}
}

// TestUnavailable: a node cut off from its store refuses upgrades with 503
// and CloseAll closes open connections with 4012.
func TestUnavailable(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	b.setDown(errDown)
	b.handler.CloseAll(protocol.CloseUnavailable)
	if code := a.Closed(); code != 4012 {
		t.Fatalf("closed with %d, want 4012", code)
	}
	resp, err := http.Get(b.srv.URL + "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade while unavailable: %d %s", resp.StatusCode, body)
	}
	b.setDown(nil)
	loggedIn(t, b, alice)
	var nilHandler *ddp.Handler
	nilHandler.CloseAll(protocol.CloseUnavailable) // the broker may call it before it made one
}

// TestShutdown: connections close with 1001 and their sessions enter the
// grace period; a new upgrade is refused.
func TestShutdown(t *testing.T) {
	b := newBed(t)
	a := loggedIn(t, b, alice)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.handler.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := a.Closed(); code != websocket.StatusGoingAway {
		t.Fatalf("closed with %d, want 1001", code)
	}
	if n := b.handler.Len(); n != 0 {
		t.Fatalf("%d connections after shutdown", n)
	}
	b.status(alice, protocol.StatusOffline)
	if err := b.handler.Start(); !errors.Is(err, ddp.ErrClosed) {
		t.Fatalf("start after shutdown: %v", err)
	}
}

// TestSockJS: Meteor's client path: /sockjs/info, then DDP in SockJS
// frames over /sockjs/{server}/{session}/websocket.
func TestSockJS(t *testing.T) {
	b := newBed(t)
	resp, err := http.Get(b.srv.URL + "/sockjs/info?cb=x1")
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info["websocket"] != true || info["cookie_needed"] != false {
		t.Fatalf("info: %v %v", info, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, b.url+"/sockjs/123/a1b2c3d4/websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func() string {
		t.Helper()
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	write := func(s string) {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if f := read(); f != "o" {
		t.Fatalf("open frame %q", f)
	}
	if f := read(); f != `a["{\"server_id\":\"0\"}"]` {
		t.Fatalf("server id frame %q", f)
	}
	write(`["{\"msg\":\"connect\",\"version\":\"1\",\"support\":[\"1\"]}","{\"msg\":\"ping\",\"id\":\"1\"}"]`)
	if f := read(); !strings.HasPrefix(f, `a["{\"msg\":\"connected\",\"session\":\"`) {
		t.Fatalf("connected frame %q", f)
	}
	if f := read(); f != `a["{\"msg\":\"pong\",\"id\":\"1\"}"]` {
		t.Fatalf("pong frame %q", f)
	}
	write(`["{\"msg\":\"method\",\"id\":\"2\",\"method\":\"login\",\"params\":[{\"resume\":\"` + b.tokens[alice] + `\"}]}"]`)
	if f := read(); !strings.HasPrefix(f, `a["{\"msg\":\"added\",\"collection\":\"users\",\"id\":\"alice\"`) ||
		!strings.Contains(f, `","{\"msg\":\"result\",\"id\":\"2\",\"result\":{\"id\":\"alice\"`) ||
		!strings.HasSuffix(f, `"{\"msg\":\"updated\",\"methods\":[\"2\"]}"]`) {
		t.Fatalf("login frame %q", f)
	}
	b.status(alice, protocol.StatusOnline)
	b.handler.CloseAll(protocol.CloseUnavailable)
	if f := read(); f != `c[4012,"presence unavailable on this node"]` {
		t.Fatalf("close frame %q", f)
	}
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != 4012 {
				t.Fatalf("closed with %v", err)
			}
			break
		}
	}
	for _, p := range []string{"/sockjs/123/a1b2/xhr", "/sockjs/websocket", "/other"} {
		resp, err := http.Get(b.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}
