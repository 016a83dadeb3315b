package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/presenced/presenced/protocol"
)

// userJWT signs an HS256 user token for sub, valid for ttl.
func userJWT(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl)),
	}).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// wsClient is a raw protocol client for tests: it reads frames into a
// channel and writes frames as given.
type wsClient struct {
	t      testing.TB
	c      *websocket.Conn
	frames chan protocol.ServerFrame
	closed chan error
	nextID uint64
}

func dialWS(t testing.TB, s *testServer, token string, opts *websocket.DialOptions) (*wsClient, *http.Response, error) {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	if opts.Subprotocols == nil {
		opts.Subprotocols = []string{protocol.Subprotocol}
	}
	if token != "" {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws", opts)
	if err != nil {
		return nil, resp, err
	}
	wc := &wsClient{t: t, c: c, frames: make(chan protocol.ServerFrame, 1024), closed: make(chan error, 1)}
	go func() {
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				wc.closed <- err
				close(wc.frames)
				return
			}
			f, err := protocol.DecodeServerFrame(data)
			if err != nil {
				t.Errorf("undecodable frame %s: %v", data, err)
				continue
			}
			wc.frames <- f
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow() })
	return wc, resp, nil
}

func mustDial(t testing.TB, s *testServer, token string) *wsClient {
	t.Helper()
	c, _, err := dialWS(t, s, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f.Op != protocol.OpHello {
		t.Fatalf("first frame %+v, want hello", f)
	}
	return c
}

// next returns the next frame, failing after 10 s.
func (c *wsClient) next() protocol.ServerFrame {
	c.t.Helper()
	return c.nextWithin(10 * time.Second)
}

func (c *wsClient) nextWithin(d time.Duration) protocol.ServerFrame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatal("connection closed")
		}
		return f
	case <-time.After(d):
		c.t.Fatalf("no frame within %v", d)
	}
	return protocol.ServerFrame{}
}

// until skips frames until one matches.
func (c *wsClient) until(match func(protocol.ServerFrame) bool) protocol.ServerFrame {
	c.t.Helper()
	for {
		if f := c.next(); match(f) {
			return f
		}
	}
}

func (c *wsClient) send(f protocol.ClientFrame) uint64 {
	c.t.Helper()
	c.nextID++
	f.ID = c.nextID
	b, err := protocol.EncodeClientFrame(f)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.c.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
	return f.ID
}

// reply sends f and returns the frame answering it.
func (c *wsClient) reply(f protocol.ClientFrame) protocol.ServerFrame {
	c.t.Helper()
	id := c.send(f)
	return c.until(func(r protocol.ServerFrame) bool { return r.ID == id })
}

// statusIn waits for a delta of group that sets user's status.
func (c *wsClient) statusIn(group, user string, want protocol.Status) protocol.Member {
	c.t.Helper()
	var got protocol.Member
	c.until(func(f protocol.ServerFrame) bool {
		if f.Op != protocol.OpDelta || f.Group != group {
			return false
		}
		for _, m := range f.Changes {
			if m.User == user && m.Status == want {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// seedTeam creates users a, b, c and group team with a and b as members.
func seedTeam(t testing.TB, s *testServer) {
	for _, u := range []string{"a", "b", "c"} {
		call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": u, "username": "user-" + u}, nil)
	}
	call(t, "POST", s.URL+"/v1/groups", s.Admin, map[string]any{"id": "team", "name": "Team"}, nil)
	call(t, "PUT", s.URL+"/v1/groups/team/members/a", s.Admin, nil, nil)
	call(t, "PUT", s.URL+"/v1/groups/team/members/b", s.Admin, nil, nil)
	waitMembers(t, s, "team", 2)
}

// addTeamMember creates user id, makes it a member of team and waits until
// the presence index has the team's want members.
func addTeamMember(t testing.TB, s *testServer, id string, want int) {
	t.Helper()
	call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": id, "username": "user-" + id}, nil)
	call(t, "PUT", s.URL+"/v1/groups/team/members/"+id, s.Admin, nil, nil)
	waitMembers(t, s, "team", want)
}

// waitMembers waits until the presence engine has the group's members:
// membership reaches the presence stream by JetStream sourcing, a few
// milliseconds after the membership write is acknowledged.
func waitMembers(t testing.TB, s *testServer, group string, n int) {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(30 * time.Second); s.Engine().Snapshot(group).Total != n; {
		if time.Now().After(deadline) {
			t.Fatalf("group %s on %s has %d of %d members in the presence index after %v",
				group, s.NodeName(), s.Engine().Snapshot(group).Total, n, time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWSTwoUsersSeeEachOther(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	a := mustDial(t, s, userJWT(t, "a", time.Hour))
	snap := a.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	if snap.Op != protocol.OpSnapshot || snap.Total != 2 || snap.Online != 1 || len(snap.Members) != 1 || snap.Members[0].User != "a" {
		t.Fatalf("snapshot: %+v", snap)
	}
	b := mustDial(t, s, userJWT(t, "b", time.Hour))
	if m := a.statusIn("team", "b", protocol.StatusOnline); m.Since == 0 || m.Rev <= snap.Rev {
		t.Fatalf("b online delta: %+v (snapshot rev %d)", m, snap.Rev)
	}
	if r := b.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy, Text: "In a meeting"}); r.Op != protocol.OpOK {
		t.Fatalf("set_status: %+v", r)
	}
	if m := a.statusIn("team", "b", protocol.StatusBusy); m.Text != "In a meeting" {
		t.Fatalf("busy delta: %+v", m)
	}
	q := a.reply(protocol.ClientFrame{Op: protocol.OpQuery, Users: []string{"b", "c"}})
	if q.Op != protocol.OpStatuses || len(q.Users) != 2 || q.Users[0].Status != protocol.StatusBusy || q.Users[1].Status != protocol.StatusOffline {
		t.Fatalf("query: %+v", q)
	}
	_ = b.c.Close(websocket.StatusNormalClosure, "bye")
	a.statusIn("team", "b", protocol.StatusOffline) // after the grace period
}

func TestWSNonMemberLearnsNothing(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	c := mustDial(t, s, userJWT(t, "c", time.Hour))
	for _, group := range []string{"team", "no-such-group"} {
		r := c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: group})
		if r.Op != protocol.OpError || r.Code != protocol.CodeForbidden || r.Message != "not a member of this group" {
			t.Fatalf("subscribe %s: %+v", group, r)
		}
	}
	r := c.reply(protocol.ClientFrame{Op: protocol.OpWatchCounts, Groups: []string{"team"}})
	if r.Op != protocol.OpError || r.Code != protocol.CodeForbidden {
		t.Fatalf("watch_counts: %+v", r)
	}
	// a connects: c, subscribed to nothing, receives nothing about it.
	mustDial(t, s, userJWT(t, "a", time.Hour))
	if p := c.reply(protocol.ClientFrame{Op: protocol.OpPing}); p.Op != protocol.OpPong {
		t.Fatalf("ping: %+v", p)
	}
	select {
	case f := <-c.frames:
		t.Fatalf("non-member received %+v", f)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWSAuthentication(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	if _, resp, err := dialWS(t, s, "", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", err, resp)
	}
	if _, resp, err := dialWS(t, s, userJWT(t, "a", -time.Minute), nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired JWT: %v %v", err, resp)
	}
	// A personal access token offered as a subprotocol, as browsers do.
	var tok struct{ Token string }
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"userId": "a", "scopes": []string{"connect"}}, &tok)
	c, _, err := dialWS(t, s, "", &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol, protocol.BearerSubprotocol(tok.Token)}})
	if err != nil {
		t.Fatal(err)
	}
	if c.c.Subprotocol() != protocol.Subprotocol {
		t.Fatalf("server chose subprotocol %q", c.c.Subprotocol())
	}
	if h := c.next(); h.Op != protocol.OpHello || h.User != "a" {
		t.Fatalf("hello %+v", h)
	}
	// A service token without presence:read cannot open a WebSocket.
	var ro struct{ Token string }
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"scopes": []string{"membership:read"}}, &ro)
	if _, resp, err := dialWS(t, s, ro.Token, nil); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("membership:read service token: %v %v", err, resp)
	}
	// Without presence.v1.json the handshake is refused before the upgrade.
	if _, resp, err := dialWS(t, s, userJWT(t, "a", time.Hour), &websocket.DialOptions{Subprotocols: []string{"chat"}}); err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no subprotocol: %v %v", err, resp)
	}
	// A token that expires closes the connection with 4001.
	short := mustDial(t, s, userJWT(t, "b", 1500*time.Millisecond))
	select {
	case err := <-short.closed:
		if websocket.CloseStatus(err) != protocol.CloseTokenExpired {
			t.Fatalf("close %v, want %d", err, protocol.CloseTokenExpired)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("connection outlived its token")
	}
}

func TestWSResumeDeliversExactlyTheMissedDeltas(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	addTeamMember(t, s, "d", 3)
	a := mustDial(t, s, userJWT(t, "a", time.Hour))
	snap := a.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	b := mustDial(t, s, userJWT(t, "b", time.Hour))
	last := a.statusIn("team", "b", protocol.StatusOnline).Rev
	_ = a.c.CloseNow() // forced disconnect; a stays present through its grace

	b.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusAway})
	mustDial(t, s, userJWT(t, "d", time.Hour))
	time.Sleep(100 * time.Millisecond) // let the changes be applied

	a2 := mustDial(t, s, userJWT(t, "a", time.Hour))
	r := a2.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team", Rev: last, Epoch: snap.Epoch})
	if r.Op != protocol.OpResumed {
		t.Fatalf("resume answered %+v", r)
	}
	var got []string
	for _, m := range r.Changes {
		if m.Rev <= last {
			t.Fatalf("resumed change at rev %d <= %d", m.Rev, last)
		}
		got = append(got, fmt.Sprintf("%s=%s", m.User, m.Status))
	}
	if want := "b=away d=online"; strings.Join(got, " ") != want {
		t.Fatalf("resumed changes %q, want %q", strings.Join(got, " "), want)
	}
	// An unknown epoch gets a fresh snapshot.
	r = a2.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team", Rev: last, Epoch: "other"})
	if r.Op != protocol.OpSnapshot || !r.Fresh {
		t.Fatalf("foreign epoch: %+v", r)
	}
}

func TestWSLimits(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	a := mustDial(t, s, userJWT(t, "a", time.Hour))
	r := a.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team", CountsOnly: true})
	if r.Op != protocol.OpCounts || len(r.Groups) != 1 || r.Groups[0].Total != 2 || r.Groups[0].Online != 1 {
		t.Fatalf("counts-only subscribe: %+v", r)
	}
	// A malformed frame gets an error and the connection goes on.
	_ = a.c.Write(context.Background(), websocket.MessageText, []byte(`{"op":"fly","id":9}`))
	if f := a.until(func(f protocol.ServerFrame) bool { return f.Op == protocol.OpError }); f.Code != protocol.CodeUnknownOp {
		t.Fatalf("unknown op: %+v", f)
	}
	// A frame over the size limit closes with 1009.
	big := `{"op":"ping","id":1,"x":"` + strings.Repeat("x", 70<<10) + `"}`
	_ = a.c.Write(context.Background(), websocket.MessageText, []byte(big))
	select {
	case err := <-a.closed:
		if websocket.CloseStatus(err) != protocol.CloseFrameTooBig {
			t.Fatalf("close %v, want 1009", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("oversized frame did not close the connection")
	}
}

// TestWSObserver: a service token with presence:read watches any group
// without being a session itself.
func TestWSObserver(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	var tok struct{ Token string }
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"name": "dash", "scopes": []string{"presence:read"}}, &tok)
	obs := mustDial(t, s, tok.Token)
	r := obs.reply(protocol.ClientFrame{Op: protocol.OpWatchCounts})
	if r.Op != protocol.OpCounts || len(r.Groups) != 1 || r.Groups[0].Group != "team" || r.Groups[0].Online != 0 {
		t.Fatalf("watch_counts: %+v", r)
	}
	mustDial(t, s, userJWT(t, "a", time.Hour))
	obs.until(func(f protocol.ServerFrame) bool {
		return f.Op == protocol.OpCounts && len(f.Groups) == 1 && f.Groups[0].Group == "team" && f.Groups[0].Online == 1
	})
	if snap := obs.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"}); snap.Op != protocol.OpSnapshot || snap.Online != 1 {
		t.Fatalf("observer subscribe: %+v", snap)
	}
	if r := obs.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy}); r.Code != protocol.CodeForbidden {
		t.Fatalf("observer set_status: %+v", r)
	}
	var st struct{ Connections, Sessions, Users, Groups int }
	if code := call(t, "GET", s.URL+"/v1/stats", tok.Token, nil, &st); code != 200 || st.Connections != 2 || st.Sessions != 1 || st.Users != 3 || st.Groups != 1 {
		t.Fatalf("stats: %d %+v", code, st)
	}
}

// TestWSClosedClientReleasesItsSocket: when a client goes away, the server
// closes its side at once (no file descriptor kept until a GC).
func TestWSClosedClientReleasesItsSocket(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	before := fds()
	for range 50 {
		c := mustDial(t, s, userJWT(t, "a", time.Hour))
		_ = c.c.CloseNow()
	}
	for deadline := time.Now().Add(10 * time.Second); fds() > before+5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("open files %d after 50 closed WebSockets, %d before", fds(), before)
		}
	}
}

// TestWSResumeShowsNoHiddenUser: a resume replays the group's changes
// after the client's revision, which may name users the client may not
// see now: one removed from the group before the client joined it, say.
// Such a resume is answered with a fresh snapshot, which names no one
// hidden. Before, a newcomer that resumed from an older revision (any
// snapshot shows one) got a removed member's statuses and texts.
func TestWSResumeShowsNoHiddenUser(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	addTeamMember(t, s, "x", 3)
	a := mustDial(t, s, userJWT(t, "a", time.Hour))
	snap := a.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
	x := mustDial(t, s, userJWT(t, "x", time.Hour))
	x.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy, Text: "x's secret"})
	a.statusIn("team", "x", protocol.StatusBusy)
	if st := call(t, "DELETE", s.URL+"/v1/groups/team/members/x", s.Admin, nil, nil); st != http.StatusNoContent {
		t.Fatalf("remove x: %d", st)
	}
	call(t, "PUT", s.URL+"/v1/groups/team/members/c", s.Admin, nil, nil)
	waitMembers(t, s, "team", 3)

	c := mustDial(t, s, userJWT(t, "c", time.Hour))
	for _, rev := range []uint64{snap.Rev, 1} {
		r := c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team", Rev: rev, Epoch: snap.Epoch})
		if r.Op != protocol.OpSnapshot || !r.Fresh {
			t.Errorf("resume from rev %d answered %s, want a fresh snapshot", rev, r.Op)
		}
		for _, m := range append(r.Members, r.Changes...) {
			if m.User == "x" {
				t.Errorf("resume from rev %d names x, whom c may not see: %+v", rev, m)
			}
		}
	}
	// A member all along, who may no longer see x either.
	r := a.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team", Rev: snap.Rev, Epoch: snap.Epoch})
	if r.Op != protocol.OpSnapshot || !r.Fresh {
		t.Errorf("a's resume answered %+v, want a fresh snapshot", r)
	}
}
