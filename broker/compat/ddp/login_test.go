package ddp_test

import (
	"context"
	"testing"
	"time"

	"github.com/presenced/presenced/broker/compat/ddp"
	"github.com/presenced/presenced/broker/compat/ddp/ddptest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

const errLoggedOut = `{"error":403,"errorType":"Meteor.Error","isClientSafe":true,"message":"You've been logged out by the server. Please log in again. [403]","reason":"You've been logged out by the server. Please log in again."}`

// TestLogin: a resume token logs in: Meteor's result, the user's document,
// and the connection is a session of the user until it closes (then the
// grace period).
func TestLogin(t *testing.T) {
	b := newBed(t)
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	before := time.Now()
	res, docs := c.Call("login", msg{"resume": b.tokens[alice]})
	r := res.Map("result")
	if r.Str("id") != alice || r.Str("token") != b.tokens[alice] || r.Str("type") != "resume" || len(r) != 4 {
		t.Fatalf("login result %s", res.JSON())
	}
	exp, _ := r.Map("tokenExpires")["$date"].(float64)
	if want := before.Add(90 * 24 * time.Hour); time.UnixMilli(int64(exp)).Before(want.Add(-time.Minute)) || len(r.Map("tokenExpires")) != 1 {
		t.Fatalf("tokenExpires %v: want {\"$date\": about 90 days ahead}", r["tokenExpires"])
	}
	if len(docs) != 1 || docs[0].JSON() != `{"collection":"users","fields":{"name":"Alice","username":"alice"},"id":"alice","msg":"added"}` {
		t.Fatalf("documents of login: %v", docs)
	}
	b.status(alice, protocol.StatusOnline)
	// Logging in again as the same user keeps the session.
	if _, docs := c.Call("login", msg{"resume": b.tokens[alice]}); len(docs) != 0 {
		t.Fatalf("second login sent %v", docs)
	}
	if n := b.engine.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions after a second login, want 1", n)
	}
	_ = c.Conn().CloseNow()
	b.status(alice, protocol.StatusOffline) // after the grace period
}

// TestLoginRefused: what is not a user's token with the connect scope is
// refused with Meteor's error for a bad resume token.
func TestLoginRefused(t *testing.T) {
	b := newBed(t)
	soon := time.Now().Add(time.Hour)
	expiring := b.token(membership.TokenSpec{Name: "short", UserID: bob, Scopes: []string{membership.ScopeConnect}, ExpiresAt: &soon})
	service := b.token(membership.TokenSpec{Name: "svc", Scopes: []string{membership.ScopePresenceRead}})
	reader := b.token(membership.TokenSpec{Name: "read", UserID: bob, Scopes: []string{membership.ScopePresenceRead}})
	ctx := context.Background()
	if _, err := b.store.UpdateUser(ctx, dave, func(u *membership.User) error { u.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	for name, tc := range map[string]struct {
		params []any
		want   string
	}{
		"unknown token":         {[]any{msg{"resume": "no-such-token"}}, errLoggedOut},
		"empty token":           {[]any{msg{"resume": ""}}, errLoggedOut},
		"service token":         {[]any{msg{"resume": service}}, errLoggedOut},
		"no connect scope":      {[]any{msg{"resume": reader}}, errLoggedOut},
		"inactive user":         {[]any{msg{"resume": b.tokens[dave]}}, errLoggedOut},
		"password login":        {[]any{msg{"user": msg{"username": "alice"}, "password": "x"}}, `{"error":400,"errorType":"Meteor.Error","isClientSafe":true,"message":"Unrecognized options for login request [400]","reason":"Unrecognized options for login request"}`},
		"resume not a string":   {[]any{msg{"resume": 42}}, `{"error":400,"errorType":"Meteor.Error","isClientSafe":true,"message":"Match failed [400]","reason":"Match failed"}`},
		"no options":            {nil, `{"error":400,"errorType":"Meteor.Error","isClientSafe":true,"message":"Match failed [400]","reason":"Match failed"}`},
		"options not an object": {[]any{"token"}, `{"error":400,"errorType":"Meteor.Error","isClientSafe":true,"message":"Match failed [400]","reason":"Match failed"}`},
	} {
		res, docs := c.Call("login", tc.params...)
		if got := ddptest.ErrorOf(res); got != tc.want || len(docs) != 0 || res["result"] != nil {
			t.Errorf("%s: %s %v, want error %s", name, res.JSON(), docs, tc.want)
		}
	}
	b.clock.Add(int64(2 * time.Hour))
	res, _ := c.Call("login", msg{"resume": expiring})
	if got := ddptest.ErrorOf(res); got != `{"error":403,"errorType":"Meteor.Error","isClientSafe":true,"message":"Your session has expired. Please log in again. [403]","reason":"Your session has expired. Please log in again."}` {
		t.Errorf("expired token: %s", got)
	}
	if n := b.engine.Stats().Sessions; n != 0 {
		t.Fatalf("%d sessions after refused logins", n)
	}
}

// TestMethodsNeedLogin: before login, the UserPresence methods do nothing
// (undefined result), setUserStatus is refused, streams are not allowed.
func TestMethodsNeedLogin(t *testing.T) {
	b := newBed(t)
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	for _, m := range []string{"UserPresence:setDefaultStatus", "UserPresence:online", "UserPresence:away", "logout"} {
		if res, _ := c.Call(m, "busy"); res.JSON() != `{"id":"`+res.Str("id")+`","msg":"result"}` {
			t.Errorf("%s before login: %s", m, res.JSON())
		}
	}
	res, _ := c.Call("setUserStatus", "busy", "x")
	if got := ddptest.ErrorOf(res); got != `{"details":{"method":"setUserStatus"},"error":"error-invalid-user","errorType":"Meteor.Error","isClientSafe":true,"message":"Invalid user [error-invalid-user]","reason":"Invalid user"}` {
		t.Errorf("setUserStatus before login: %s", got)
	}
	for _, sub := range [][]any{{"stream-user-presence", bob, msg{"useCollection": false, "args": []any{}}}, {"stream-notify-logged", "user-status", false}} {
		m := c.Sub(sub[0].(string), sub[1:]...)
		if got := ddptest.ErrorOf(m); got != `{"error":"not-allowed","errorType":"Meteor.Error","isClientSafe":true,"message":"[not-allowed]"}` {
			t.Errorf("%v before login: %s", sub, m.JSON())
		}
	}
	if got := b.engine.Status(bob).Status; got != protocol.StatusOffline {
		t.Fatalf("bob is %s", got)
	}
}

// TestStatusMethods: the methods the clients call, and what the engine
// shows after each.
func TestStatusMethods(t *testing.T) {
	b := newBed(t)
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	c.Login(b.tokens[alice])
	b.status(alice, protocol.StatusOnline)
	check := func(st protocol.Status, text string) {
		t.Helper()
		b.status(alice, st)
		if got := b.engine.Status(alice).Text; got != text {
			t.Fatalf("text %q, want %q", got, text)
		}
	}
	if r := c.Result("UserPresence:setDefaultStatus", "busy"); r != true {
		t.Fatalf("setDefaultStatus answered %v", r)
	}
	check(protocol.StatusBusy, "")
	if r := c.Result("setUserStatus", "away", "  at lunch  "); r != nil {
		t.Fatalf("setUserStatus answered %v", r)
	}
	check(protocol.StatusAway, "at lunch")
	c.Result("setUserStatus", nil, "back at 2")
	check(protocol.StatusAway, "back at 2")
	c.Result("UserPresence:setDefaultStatus", "offline") // invisible, keeps the text
	check(protocol.StatusOffline, "back at 2")
	c.Result("UserPresence:setDefaultStatus", "online") // clears status and text
	check(protocol.StatusOnline, "")
	c.Result("setUserStatus", "online", "on call")
	check(protocol.StatusOnline, "on call")
	c.Result("setUserStatus", "online", "")
	check(protocol.StatusOnline, "")
	// The connection's own status, as the client's idle detection sets it.
	if r := c.Result("UserPresence:away"); r != true {
		t.Fatalf("UserPresence:away answered %v", r)
	}
	check(protocol.StatusAway, "")
	c.Result("UserPresence:online")
	check(protocol.StatusOnline, "")
	res, _ := c.Call("UserPresence:setDefaultStatus", "dnd")
	if got := ddptest.ErrorOf(res); got != `{"error":"error-invalid-status","errorType":"Meteor.Error","isClientSafe":true,"message":"Valid status types include online, away, offline, and busy. [error-invalid-status]","reason":"Valid status types include online, away, offline, and busy."}` {
		t.Fatalf("invalid status: %s", got)
	}
	res, _ = c.Call("setUserStatus", 3)
	if got := ddptest.ErrorOf(res); got != `{"error":400,"errorType":"Meteor.Error","isClientSafe":true,"message":"Match failed [400]","reason":"Match failed"}` {
		t.Fatalf("status not a string: %s", got)
	}
	// logout ends the session.
	if res, docs := c.Call("logout"); res["result"] != nil || len(docs) != 1 || docs[0].JSON() != `{"collection":"users","id":"alice","msg":"removed"}` {
		t.Fatalf("logout: %s %v", res.JSON(), docs)
	}
	b.status(alice, protocol.StatusOffline)
}

// TestLoginDeadline: a connection that does not log in in time is closed
// with 4002, and so is one that logged out.
func TestLoginDeadline(t *testing.T) {
	b := newBed(t, func(c *ddpConfig) { c.LoginTimeout = 300 * time.Millisecond })
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	if code := c.Closed(); code != 4002 {
		t.Fatalf("closed with %d, want 4002", code)
	}
	d := ddptest.Dial(t, b.url+"/websocket", nil)
	d.Connect()
	d.Login(b.tokens[bob])
	time.Sleep(500 * time.Millisecond)
	d.Send(msg{"msg": "ping", "id": "alive"})
	d.Expect("pong")
	d.Result("logout")
	if code := d.Closed(); code != 4002 {
		t.Fatalf("closed after logout with %d, want 4002", code)
	}
}

// revokingPresence revokes a token once a session of its user is stored,
// as a revocation applied while Connect waited out an election would be:
// the broker's change feed closes the connections that logged in with it
// (CloseWhere), and the login is not done yet.
type revokingPresence struct {
	ddp.Presence
	b    *bed
	user string
}

func (p *revokingPresence) Connect(ctx context.Context, info presence.SessionInfo) (*presence.Session, error) {
	s, err := p.Presence.Connect(ctx, info)
	if err != nil || info.User != p.user {
		return s, err
	}
	tok, ok := p.b.store.Index().TokenByHash(membership.HashToken(p.b.tokens[p.user]))
	if !ok {
		p.b.t.Fatal("no token")
	}
	if _, err := p.b.store.RevokeToken(ctx, tok.ID); err != nil {
		p.b.t.Fatal(err)
	}
	p.b.handler.CloseWhere(func(c membership.Credential) bool { return c.TokenID == tok.ID })
	return s, nil
}

// TestLoginRevokedWhileTheSessionIsStored: a token revoked between the
// login's check of it and the end of the session's write found no logged
// in connection to close, and the login succeeded with it. It must be
// refused, and the session it began must end.
func TestLoginRevokedWhileTheSessionIsStored(t *testing.T) {
	p := &revokingPresence{user: alice}
	b := newBed(t, func(c *ddp.Config) { p.Presence = c.Presence; c.Presence = p })
	p.b = b
	c := ddptest.Dial(t, b.url+"/websocket", nil)
	c.Connect()
	res, _ := c.Call("login", msg{"resume": b.tokens[alice]})
	if got := ddptest.ErrorOf(res); got != errLoggedOut || res["result"] != nil {
		t.Fatalf("login with a token revoked meanwhile: %s, want error %s", res.JSON(), errLoggedOut)
	}
	b.status(alice, protocol.StatusOffline)
}
