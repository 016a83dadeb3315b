package ddp_test

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/broker/compat/ddp/ddptest"
)

type msg = ddptest.Msg

// TestHandshake: the server speaks first ({"server_id":"0"}), connect is
// answered connected with a Meteor session id, ping with pong.
func TestHandshake(t *testing.T) {
	b := newBed(t)
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	session := c.Connect()
	if len(session) != 17 {
		t.Fatalf("session %q: want a 17-character Meteor id", session)
	}
	c.Send(msg{"msg": "ping", "id": "p1"})
	if m := c.Expect("pong"); m.JSON() != `{"id":"p1","msg":"pong"}` {
		t.Fatalf("pong %s", m.JSON())
	}
	c.Send(msg{"msg": "ping"})
	if m := c.Expect("pong"); m.JSON() != `{"msg":"pong"}` {
		t.Fatalf("pong without id %s", m.JSON())
	}
	c.Send(msg{"msg": "pong"}) // answers nothing
	c.Send(msg{"msg": "connect", "version": "1", "support": []string{"1"}})
	if m := c.Expect("error"); m.Str("reason") != "Already connected" || m.Map("offendingMessage").Str("msg") != "connect" {
		t.Fatalf("second connect: %s", m.JSON())
	}
}

// TestVersionNegotiation: a client proposing a version other than 1 gets
// failed with version 1, and the socket closes.
func TestVersionNegotiation(t *testing.T) {
	b := newBed(t)
	for _, connect := range []msg{
		{"msg": "connect", "version": "pre2", "support": []string{"pre2", "pre1"}},
		{"msg": "connect", "version": "pre2", "support": []string{"pre2", "1"}},
		{"msg": "connect", "version": "1", "support": []string{"pre1"}}, // not listed
		{"msg": "connect"},
	} {
		c := ddptest.Dial(t, b.url+"/websocket", nil)
		c.Expect("") // server_id
		c.Send(connect)
		if m := c.Expect("failed"); m.JSON() != `{"msg":"failed","version":"1"}` {
			t.Fatalf("%v: %s", connect, m.JSON())
		}
		if code := c.Closed(); code != websocket.StatusNormalClosure {
			t.Fatalf("%v: closed with %d", connect, code)
		}
	}
}

// TestBadMessages: what is not DDP gets DDP's error message, with the
// message as offendingMessage whenever it parsed (as Meteor's server
// answers; text that is not a JSON object has nothing to echo).
func TestBadMessages(t *testing.T) {
	b := newBed(t)
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Expect("")
	c.Send(msg{"msg": "method", "id": "1", "method": "login", "params": []any{}})
	if m := c.Expect("error"); m.JSON() != `{"msg":"error","offendingMessage":{"id":"1","method":"login","msg":"method","params":[]},"reason":"Must connect first"}` {
		t.Fatalf("before connect: %s", m.JSON())
	}
	c.Handshake()
	for _, tc := range []struct {
		send, reason string
		offending    bool
	}{
		{`not json`, "Bad request", false},
		{`[1,2]`, "Bad request", false},
		{`{"hello":"world"}`, "Bad request", true},
		{`{"msg":42}`, "Bad request", true},
		{`{"msg":"bogus","id":"7"}`, "Bad request", true},
		{`{"msg":"method","method":"login"}`, "Malformed method invocation", true},
		{`{"msg":"method","id":"1"}`, "Malformed method invocation", true},
		{`{"msg":"method","id":"1","method":"login","params":{}}`, "Malformed method invocation", true},
		{`{"msg":"method","id":1,"method":"login"}`, "Malformed method invocation", true},
		{`{"msg":"sub","id":"1"}`, "Malformed subscription", true},
		{`{"msg":"sub","id":"1","name":"x","params":"a"}`, "Malformed subscription", true},
		{`{"msg":"unsub"}`, "Bad request", true},
	} {
		c.SendText(tc.send)
		m := c.Expect("error")
		if m.Str("reason") != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.send, m.Str("reason"), tc.reason)
		}
		if _, ok := m["offendingMessage"]; ok != tc.offending {
			t.Errorf("%s: %s: offendingMessage present %v, want %v", tc.send, m.JSON(), ok, tc.offending)
		}
		if tc.offending {
			want := ddptest.Msg{}
			_ = jsonUnmarshal(tc.send, &want)
			if got := ddptest.Msg(m.Map("offendingMessage")).JSON(); got != want.JSON() {
				t.Errorf("%s: offendingMessage %s", tc.send, got)
			}
		}
	}
	// The connection stays usable.
	c.Send(msg{"msg": "ping", "id": "x"})
	c.Expect("pong")
}

// TestUnknownMethodAndSub: Meteor's 404 errors.
func TestUnknownMethodAndSub(t *testing.T) {
	b := newBed(t)
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	res, _ := c.Call("sendMessage", msg{"rid": "x"})
	if got := ddptest.ErrorOf(res); got != `{"error":404,"errorType":"Meteor.Error","isClientSafe":true,"message":"Method 'sendMessage' not found [404]","reason":"Method 'sendMessage' not found"}` {
		t.Fatalf("unknown method: %s", got)
	}
	if m := c.Sub("stream-room-messages", "GENERAL", false); ddptest.ErrorOf(m) != `{"error":404,"errorType":"Meteor.Error","isClientSafe":true,"message":"Subscription 'stream-room-messages' not found [404]","reason":"Subscription 'stream-room-messages' not found"}` {
		t.Fatalf("unknown sub: %s", m.JSON())
	}
	c.Send(msg{"msg": "unsub", "id": "never"})
	if m := c.Expect("nosub"); m.JSON() != `{"id":"never","msg":"nosub"}` {
		t.Fatalf("unsub of an unknown id: %s", m.JSON())
	}
}

// TestServerPings: a silent client is pinged, and closed with 4010 when it
// does not answer.
func TestServerPings(t *testing.T) {
	b := newBed(t, func(c *ddpConfig) { c.IdleTimeout = 600 * time.Millisecond })
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.AutoPong(false)
	c.Connect()
	if m := c.Expect("ping"); m.JSON() != `{"msg":"ping"}` {
		t.Fatalf("ping %s", m.JSON())
	}
	c.Send(msg{"msg": "pong"})
	c.Expect("ping") // silent again
	if code := c.Closed(); code != 4010 {
		t.Fatalf("closed with %d, want 4010 idle timeout", code)
	}
	// A client that answers stays.
	d := ddptest.Dial(t, b.url+"/websocket", nil)
	d.Connect()
	d.Quiet(1500 * time.Millisecond)
	d.Send(msg{"msg": "ping", "id": "still"})
	d.Expect("pong")
}
