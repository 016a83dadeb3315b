package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/broker/compat/ddp/ddptest"
	"github.com/presenced/presenced/protocol"
)

func wsURL(s *testServer) string { return "ws" + strings.TrimPrefix(s.URL, "http") }

// connectToken issues a personal token of user with the connect scope.
func connectToken(t testing.TB, s *testServer, user string) string {
	t.Helper()
	var tok struct{ Token string }
	if st := call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"userId": user, "scopes": []string{"connect"}}, &tok); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("token of %s: %d", user, st)
	}
	return tok.Token
}

// TestDDPCluster: a status set through the native WebSocket, through
// Rocket.Chat's REST users.setStatus and through DDP, each on another node
// of a three-node cluster, reaches a DDP subscriber on the first node, in
// Rocket.Chat's shapes; a user the subscriber may not see sends nothing.
func TestDDPCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	seedCluster(t, a, "alice", "bob")
	call(t, "POST", a.URL+"/v1/users", a.Admin, map[string]any{"id": "dave", "username": "user-dave"}, nil) // in no group
	bobToken := connectToken(t, a.testServer, "bob")
	daveToken := connectToken(t, a.testServer, "dave")
	for _, n := range nodes {
		waitMembers(t, n.testServer, "team", 2)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, ok := n.Store().Index().User("dave"); ok && len(n.Store().Index().Tokens()) >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never saw dave and the tokens", n.name)
			}
		}
	}

	// alice is online before her DDP login, so that the login changes
	// nothing: her own online change would otherwise reach her user-status
	// stream, or not, depending on whether it was applied before her
	// subscription.
	mustDial(t, a.testServer, userJWT(t, "alice", time.Hour))
	waitStatusOf(t, a.testServer, "alice", protocol.StatusOnline)
	watcher := ddptest.Dial(t, wsURL(a.testServer)+"/websocket", nil)
	watcher.Connect()
	watcher.Login(userJWT(t, "alice", time.Hour))
	for _, sub := range [][]any{
		{"stream-user-presence", "bob", map[string]any{"useCollection": false, "args": []any{}}},
		{"stream-user-presence", "dave", map[string]any{"useCollection": false, "args": []any{}}},
		{"stream-notify-logged", "user-status", map[string]any{"useCollection": false, "args": []any{}}},
	} {
		if m := watcher.Sub(sub[0].(string), sub[1:]...); m.Type() != "ready" {
			t.Fatalf("%v: %s", sub, m.JSON())
		}
	}
	// bob's changes come in pairs: his presence stream, then user-status.
	expect := func(how string, code int, text string) {
		t.Helper()
		if args := watcher.Changed("stream-user-presence"); ddptest.Args(args...) != ddptest.Args([]any{"user-bob", code, text}) {
			t.Fatalf("%s: user-presence %s", how, ddptest.Args(args...))
		}
		if args := watcher.Changed("stream-notify-logged"); ddptest.Args(args...) != ddptest.Args([]any{"bob", "user-bob", code, text, "", []string{}}) {
			t.Fatalf("%s: user-status %s", how, ddptest.Args(args...))
		}
	}

	// The native WebSocket on node b.
	native := mustDial(t, b.testServer, userJWT(t, "bob", time.Hour))
	expect("native connect", 1, "")
	native.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusAway, Text: "lunch"})
	expect("native set_status", 2, "lunch")

	// Rocket.Chat's REST users.setStatus on node c.
	req, _ := http.NewRequest("POST", c.URL+"/api/v1/users.setStatus", strings.NewReader(`{"status":"busy","message":"meeting"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-Id", "bob")
	req.Header.Set("X-Auth-Token", bobToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("users.setStatus: %d", resp.StatusCode)
	}
	expect("REST users.setStatus", 3, "meeting")

	// DDP on node b.
	bobDDP := ddptest.Dial(t, wsURL(b.testServer)+"/websocket", nil)
	bobDDP.Connect()
	bobDDP.Login(bobToken)
	bobDDP.Result("UserPresence:setDefaultStatus", "online")
	expect("DDP setDefaultStatus", 1, "")

	// dave, whom alice may not see, changes on node c: nothing reaches
	// her, before or after bob's next change.
	daveDDP := ddptest.Dial(t, wsURL(c.testServer)+"/websocket", nil)
	daveDDP.Connect()
	daveDDP.Login(daveToken)
	daveDDP.Result("UserPresence:setDefaultStatus", "busy")
	for deadline := time.Now().Add(10 * time.Second); a.Engine().Status("dave").Status != protocol.StatusBusy; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("dave's busy never reached node a")
		}
	}
	bobDDP.Result("setUserStatus", "away", "brb")
	expect("DDP setUserStatus, after dave's change", 2, "brb")
	watcher.Quiet(300 * time.Millisecond)
}

// TestDDPClosedWhenUnavailable: when the node is cut off from its store,
// its DDP connections close with 4012 like its native WebSockets, and the
// sockjs info is served at the path Meteor's client asks.
func TestDDPClosedWhenUnavailable(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	c := ddptest.Dial(t, wsURL(s)+"/websocket", nil)
	c.Connect()
	c.Login(userJWT(t, "a", time.Hour))
	var info struct{ WebSocket bool }
	if st := call(t, "GET", s.URL+"/sockjs/info", "", nil, &info); st != http.StatusOK || !info.WebSocket {
		t.Fatalf("/sockjs/info: %d %+v", st, info)
	}
	s.OnAvailability(errors.New("no quorum"))
	if code := c.Closed(); code != protocol.CloseUnavailable {
		t.Fatalf("closed with %d, want %d", code, protocol.CloseUnavailable)
	}
	s.OnAvailability(nil)
}

// nodeCommand returns the node command line with a global WebSocket (Node
// 22+, or Node 20/21 with --experimental-websocket), with the Rocket.Chat
// client installed at the repository root; it skips without them, or fails
// under CI.
func nodeCommand(t *testing.T, root string) []string {
	t.Helper()
	missing := func(why string) []string {
		if os.Getenv("CI") == "" {
			t.Skip(why + ": run npm ci at the repository root")
		}
		t.Fatal(why + " in CI: .ci/run must install Node.js 20+ and the packages (npm ci)")
		return nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return missing("node not installed")
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "@rocket.chat", "ddp-client", "package.json")); err != nil {
		return missing("@rocket.chat/ddp-client not installed")
	}
	for _, args := range [][]string{{node}, {node, "--experimental-websocket"}} {
		probe := append(append([]string(nil), args...), "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)")
		if exec.Command(probe[0], probe[1:]...).Run() == nil {
			return args
		}
	}
	return missing("node has no WebSocket (Node.js 20.10 or later is needed)")
}

// ddpFixture is what broker/compat/clienttest/rocketchat-ddp.e2e.mjs reads.
type ddpFixture struct {
	URL     string `json:"url"`
	Control string `json:"control"` // POST /close: the node closes every DDP connection
	Users   map[string]struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
		Token    string `json:"token"`
		JWT      string `json:"jwt"`
	} `json:"users"`
	ServiceToken string `json:"serviceToken"`
	ReadToken    string `json:"readToken"`
}

// TestDDPRocketChatClient runs Rocket.Chat's own @rocket.chat/ddp-client,
// unchanged, against one node: login with a personal token and a JWT,
// refused tokens, an unknown method, malformed messages, both presence
// streams, a user it may not see, and its reconnect after the node closed
// every connection (it logs in again and resubscribes).
func TestDDPRocketChatClient(t *testing.T) {
	const root = ".."
	node := nodeCommand(t, root)
	s := startServer(t, "")
	for _, u := range []map[string]any{
		{"id": "alice", "username": "alice", "name": "Alice"},
		{"id": "bob", "username": "bob", "name": "Bob"},
		{"id": "outsider", "username": "outsider", "name": "Out Sider"}, // in no group
	} {
		call(t, "POST", s.URL+"/v1/users", s.Admin, u, nil)
	}
	call(t, "POST", s.URL+"/v1/groups", s.Admin, map[string]any{"id": "team", "name": "Team"}, nil)
	call(t, "PUT", s.URL+"/v1/groups/team/members/alice", s.Admin, nil, nil)
	call(t, "PUT", s.URL+"/v1/groups/team/members/bob", s.Admin, nil, nil)
	waitMembers(t, s, "team", 2)

	fx := ddpFixture{URL: s.URL}
	fx.Users = map[string]struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
		Token    string `json:"token"`
		JWT      string `json:"jwt"`
	}{}
	for _, id := range []string{"alice", "bob", "outsider"} {
		u, ok := s.Store().Index().User(id)
		if !ok {
			t.Fatalf("no user %s", id)
		}
		e := fx.Users[id]
		e.ID, e.Username, e.Name = u.ID, u.Username, u.Name
		e.Token, e.JWT = connectToken(t, s, id), userJWT(t, id, time.Hour)
		fx.Users[id] = e
	}
	var svc, read struct{ Token string }
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"scopes": []string{"presence:read"}}, &svc)
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"userId": "alice", "scopes": []string{"presence:read"}}, &read)
	fx.ServiceToken, fx.ReadToken = svc.Token, read.Token

	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/close" {
			s.DDP().CloseAll(protocol.CloseUnavailable)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(control.Close)
	fx.Control = control.URL

	raw, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fixture.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append(node[1:], "--test", "--test-concurrency=1", "broker/compat/clienttest/rocketchat-ddp.e2e.mjs")
	cmd := exec.CommandContext(ctx, node[0], args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PRESENCED_DDP_FIXTURE="+path, "NODE_NO_WARNINGS=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("node --test failed: %v\n%s", err, out.String())
	}
	t.Logf("node --test:\n%s", out.String())
}

// TestDDPUserHiddenReadsOffline: two users watch each other over
// Rocket.Chat's realtime API; once one is removed from the group they
// shared, each is told the other is offline, as a user it may not see
// reads. Before, nothing came, and each client showed the other's last
// status for good.
func TestDDPUserHiddenReadsOffline(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	watch := func(viewer, target string) *ddptest.Client {
		c := ddptest.Dial(t, wsURL(s)+"/websocket", nil)
		c.Connect()
		c.Login(userJWT(t, viewer, time.Hour))
		if m := c.Sub("stream-user-presence", target, map[string]any{"useCollection": false, "args": []any{}}); m.Type() != "ready" {
			t.Fatalf("%s watching %s: %s", viewer, target, m.JSON())
		}
		return c
	}
	aSeesB, bSeesA := watch("a", "b"), watch("b", "a")
	b := mustDial(t, s, userJWT(t, "b", time.Hour))
	b.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy, Text: "meeting"})
	aSeesB.WaitChanged("stream-user-presence", `[["user-b",3,"meeting"]]`)

	if st := call(t, "DELETE", s.URL+"/v1/groups/team/members/a", s.Admin, nil, nil); st != http.StatusNoContent {
		t.Fatalf("remove a: %d", st)
	}
	aSeesB.WaitChanged("stream-user-presence", `[["user-b",0,""]]`)
	bSeesA.WaitChanged("stream-user-presence", `[["user-a",0,""]]`)
	// And nothing more of the other.
	b.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusAway, Text: "lunch"})
	aSeesB.Quiet(300 * time.Millisecond)
}
