package broker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/broker/compat/ddp/ddptest"
	"github.com/presenced/presenced/protocol"
)

// issue creates a token through the API with the caller's token and
// returns its secret and id (empty on refusal) and the status.
func issue(t *testing.T, s *testServer, caller string, body map[string]any) (secret, id string, status int) {
	t.Helper()
	var out struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	status = call(t, "POST", s.URL+"/v1/tokens", caller, body, &out)
	return out.Token, out.ID, status
}

// mustIssue issues with the admin token and fails the test otherwise.
func mustIssue(t *testing.T, s *testServer, body map[string]any) (secret, id string) {
	t.Helper()
	secret, id, st := issue(t, s, s.Admin, body)
	if st != http.StatusCreated {
		t.Fatalf("issue %v: %d", body, st)
	}
	return secret, id
}

// TestTokenIssuanceRules: a caller issues tokens only for its own user (a
// token bound to no user: only unbound ones), only scopes it holds, never
// for longer than its own life; only the admin scope issues for others.
func TestTokenIssuanceRules(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	call(t, "PUT", s.URL+"/v1/users/c/roles/admin", s.Admin, nil, nil)
	soon := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	userTok, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"tokens", "connect"}})
	shortTok, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"tokens", "connect"}, "expiresAt": soon})
	serviceTok, _ := mustIssue(t, s, map[string]any{"scopes": []string{"tokens"}})
	tests := []struct {
		name   string
		caller string
		body   map[string]any
		want   int
	}{
		{"user token for an admin user", userTok, map[string]any{"userId": "c", "scopes": []string{"connect"}}, http.StatusForbidden},
		{"user token for another user", userTok, map[string]any{"userId": "b", "scopes": []string{"connect"}}, http.StatusForbidden},
		{"user token unbound", userTok, map[string]any{"scopes": []string{"connect"}}, http.StatusForbidden},
		{"user token, a scope it lacks", userTok, map[string]any{"userId": "a", "scopes": []string{"presence:read"}}, http.StatusForbidden},
		{"user token for itself", userTok, map[string]any{"userId": "a", "scopes": []string{"connect"}}, http.StatusCreated},
		{"service token for a user", serviceTok, map[string]any{"userId": "a", "scopes": []string{"tokens"}}, http.StatusForbidden},
		{"service token unbound", serviceTok, map[string]any{"scopes": []string{"tokens"}}, http.StatusCreated},
		{"longer life than its own", shortTok, map[string]any{"userId": "a", "scopes": []string{"connect"},
			"expiresAt": soon.Add(time.Hour)}, http.StatusForbidden},
		{"no more life than its own", shortTok, map[string]any{"userId": "a", "scopes": []string{"connect"}}, http.StatusCreated},
		{"admin for anyone", s.Admin, map[string]any{"userId": "c", "scopes": []string{"admin"}}, http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, st := issue(t, s, tt.caller, tt.body); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
		})
	}
	// A token issued by an expiring one expires with it at the latest.
	var out struct {
		ExpiresAt *time.Time `json:"expiresAt"`
	}
	call(t, "POST", s.URL+"/v1/tokens", shortTok, map[string]any{"userId": "a", "scopes": []string{"connect"}}, &out)
	if out.ExpiresAt == nil || out.ExpiresAt.After(soon) {
		t.Fatalf("child of an expiring token expires at %v, want at most %v", out.ExpiresAt, soon)
	}
}

// TestTokenRevocationRules: a caller revokes only its own token and those
// it issued (which go with their issuer); only the admin scope revokes
// any. Another's token reads as missing, and is not listed.
func TestTokenRevocationRules(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	tokensTok, tokensID := mustIssue(t, s, map[string]any{"scopes": []string{"tokens"}})
	parentTok, parentID := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"tokens", "connect"}})
	childTok, childID, st := issue(t, s, parentTok, map[string]any{"userId": "a", "scopes": []string{"tokens", "connect"}})
	if st != http.StatusCreated {
		t.Fatalf("issue child: %d", st)
	}
	_, grandID, st := issue(t, s, childTok, map[string]any{"userId": "a", "scopes": []string{"connect"}})
	if st != http.StatusCreated {
		t.Fatalf("issue grandchild: %d", st)
	}
	revoke := func(caller, id string) int {
		return call(t, "DELETE", s.URL+"/v1/tokens/"+id, caller, nil, nil)
	}
	if st := revoke(tokensTok, "admin"); st != http.StatusNotFound {
		t.Fatalf("a tokens token revoking the admin's: %d", st)
	}
	if st := call(t, "GET", s.URL+"/v1/users", s.Admin, nil, nil); st != http.StatusOK {
		t.Fatalf("the admin locked out: %d", st)
	}
	if st := revoke(childTok, parentID); st != http.StatusNotFound {
		t.Fatalf("a child revoking its parent: %d", st)
	}
	if st := revoke(tokensTok, parentID); st != http.StatusNotFound {
		t.Fatalf("an unrelated token revoking another's: %d", st)
	}
	var list struct{ Items []struct{ ID string } }
	call(t, "GET", s.URL+"/v1/tokens", parentTok, nil, &list)
	if fmt.Sprint(ids(list.Items)) != fmt.Sprint([]string{childID, grandID, parentID}) &&
		len(list.Items) != 3 {
		t.Fatalf("the parent lists %v, want itself and its descendants", ids(list.Items))
	}
	// Revoking the child takes the grandchild with it.
	if st := revoke(parentTok, childID); st != http.StatusNoContent {
		t.Fatalf("a parent revoking its child: %d", st)
	}
	for _, id := range []string{childID, grandID} {
		if _, ok := s.Store().Index().Token(id); ok {
			t.Fatalf("token %s still there", id)
		}
	}
	if st := revoke(tokensTok, tokensID); st != http.StatusNoContent {
		t.Fatalf("revoking itself: %d", st)
	}
	if st := revoke(s.Admin, parentID); st != http.StatusNoContent {
		t.Fatalf("the admin revoking any: %d", st)
	}
}

func ids(items []struct{ ID string }) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// waitClosed waits for the server to close c and returns the close code.
func waitClosed(t *testing.T, c *wsClient) websocket.StatusCode {
	t.Helper()
	start := time.Now()
	for {
		select {
		case _, ok := <-c.frames:
			if ok {
				continue
			}
			err := <-c.closed
			t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
			return websocket.CloseStatus(err)
		case <-time.After(10 * time.Second):
			t.Fatal("still open 10s later")
		}
	}
}

// TestRevocationClosesConnections: a revoked token, or a user deactivated
// or deleted, closes the WebSockets that use it with 4002 at once, instead
// of leaving set_status and deltas working: the native ones and Rocket.Chat
// realtime (DDP) ones alike.
func TestRevocationClosesConnections(t *testing.T) {
	tests := []struct {
		name   string
		jwt    bool
		revoke func(t *testing.T, s *testServer, tokenID string)
	}{
		{"token revoked", false, func(t *testing.T, s *testServer, id string) {
			call(t, "DELETE", s.URL+"/v1/tokens/"+id, s.Admin, nil, nil)
		}},
		{"user deactivated", false, func(t *testing.T, s *testServer, _ string) {
			call(t, "PATCH", s.URL+"/v1/users/a", s.Admin, map[string]any{"active": false}, nil)
		}},
		{"user deleted", false, func(t *testing.T, s *testServer, _ string) {
			call(t, "DELETE", s.URL+"/v1/users/a", s.Admin, nil, nil)
		}},
		{"JWT user deactivated", true, func(t *testing.T, s *testServer, _ string) {
			call(t, "PATCH", s.URL+"/v1/users/a", s.Admin, map[string]any{"active": false}, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, "")
			seedTeam(t, s)
			tok, id := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"connect"}})
			if tt.jwt {
				tok = userJWT(t, "a", time.Hour)
			}
			c := mustDial(t, s, tok)
			c.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"})
			rt := ddptest.Dial(t, wsURL(s)+"/websocket", nil)
			rt.Connect()
			rt.Login(tok)
			tt.revoke(t, s, id)
			if code := waitClosed(t, c); code != protocol.CloseUnauthorized {
				t.Fatalf("closed with %d, want %d", code, protocol.CloseUnauthorized)
			}
			if code := rt.Closed(); code != protocol.CloseUnauthorized {
				t.Fatalf("DDP closed with %d, want %d", code, protocol.CloseUnauthorized)
			}
		})
	}
}

// TestRemovedMemberLosesTheGroup: a member removed from a group gets the
// error push of the spec and nothing more of that group: no deltas, no
// counts.
func TestRemovedMemberLosesTheGroup(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	a := mustDial(t, s, userJWT(t, "a", time.Hour))
	if f := a.reply(protocol.ClientFrame{Op: protocol.OpSubscribe, Group: "team"}); f.Op != protocol.OpSnapshot {
		t.Fatalf("subscribe: %+v", f)
	}
	if f := a.reply(protocol.ClientFrame{Op: protocol.OpWatchCounts, Groups: []string{"team"}}); f.Op != protocol.OpCounts {
		t.Fatalf("watch_counts: %+v", f)
	}
	call(t, "DELETE", s.URL+"/v1/groups/team/members/a", s.Admin, nil, nil)
	end := a.until(func(f protocol.ServerFrame) bool { return f.Op == protocol.OpError && f.Group == "team" })
	if end.Code != protocol.CodeForbidden || end.ID != 0 {
		t.Fatalf("the push that ends the subscription: %+v", end)
	}
	b := mustDial(t, s, userJWT(t, "b", time.Hour))
	b.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy, Text: "secret plans"})
	// A round trip after b's change: anything of team would be before it.
	pong := a.reply(protocol.ClientFrame{Op: protocol.OpPing})
	for {
		select {
		case f := <-a.frames:
			if f.Group == "team" || f.Op == protocol.OpCounts {
				t.Fatalf("a removed member still receives %+v", f)
			}
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}
	_ = pong
}

// TestVisibilityOnEveryAPI: whose presence a user sees is one rule on the
// WebSocket and on Rocket.Chat's endpoints: users sharing no group read as
// offline, unless the deployment sees everyone (--presence-visibility all).
func TestVisibilityOnEveryAPI(t *testing.T) {
	for _, vis := range []string{"shared-groups", "all"} {
		t.Run(vis, func(t *testing.T) {
			s := startServer(t, "", func(c *broker.Config) { c.PresenceVisibility = vis })
			seedTeam(t, s) // a, b in team; c in no group
			tokA, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"connect"}})
			mustDial(t, s, userJWT(t, "c", time.Hour)) // c is online
			waitStatusOf(t, s, "c", protocol.StatusOnline)
			wantC := protocol.StatusOnline
			if vis == "shared-groups" {
				wantC = protocol.StatusOffline
			}
			a := mustDial(t, s, tokA)
			q := a.reply(protocol.ClientFrame{Op: protocol.OpQuery, Users: []string{"c"}})
			if len(q.Users) != 1 || q.Users[0].Status != wantC {
				t.Fatalf("WebSocket query of c: %+v, want %s", q.Users, wantC)
			}
			// One user's status, by id or by name: a user a may not see
			// reads as one that does not exist, not even its id shows.
			for _, q := range []struct{ c, missing string }{
				{"userId=c", "userId=nobody"},
				{"username=user-c", "username=nobody"},
			} {
				code, body := rcRaw(t, s, "a", tokA, "/api/v1/users.getStatus?"+q.c)
				if vis == "all" {
					var st struct{ Status string }
					if err := decodeInto(body, &st); code != http.StatusOK || err != nil || st.Status != string(wantC) {
						t.Fatalf("users.getStatus?%s: %d %s, want %s", q.c, code, body, wantC)
					}
					continue
				}
				mcode, mbody := rcRaw(t, s, "a", tokA, "/api/v1/users.getStatus?"+q.missing)
				if code != mcode || string(body) != string(mbody) {
					t.Fatalf("users.getStatus?%s: %d %s; of a user that does not exist: %d %s", q.c, code, body, mcode, mbody)
				}
			}
			var pres struct {
				Users []struct {
					ID string `json:"_id"`
				}
			}
			rcGet(t, s, "a", tokA, "/api/v1/users.presence?ids=c", &pres)
			if got := len(pres.Users) == 1; got != (wantC == protocol.StatusOnline) {
				t.Fatalf("users.presence?ids=c: %+v, want c shown: %v", pres.Users, wantC == protocol.StatusOnline)
			}
		})
	}
}

// TestVendorAPIsNeedConnect: acting as a user on a vendor's API takes a
// token with the connect scope.
func TestVendorAPIsNeedConnect(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	narrow, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"membership:read"}})
	if st := rcGet(t, s, "a", narrow, "/api/v1/users.getStatus", nil); st != http.StatusUnauthorized {
		t.Fatalf("Rocket.Chat with a token lacking connect: %d", st)
	}
	full, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"connect"}})
	if st := rcGet(t, s, "a", full, "/api/v1/users.getStatus", nil); st != http.StatusOK {
		t.Fatalf("Rocket.Chat with a connect token: %d", st)
	}
}

// rcGet calls a Rocket.Chat endpoint as user with token.
func rcGet(t *testing.T, s *testServer, user, token, path string, out any) int {
	t.Helper()
	code, raw := rcRaw(t, s, user, token, path)
	if out != nil && code == http.StatusOK {
		if err := decodeInto(raw, out); err != nil {
			t.Fatalf("%s: %s: %v", path, raw, err)
		}
	}
	return code
}

// rcRaw calls a Rocket.Chat endpoint as user with token and returns the
// status and body whatever they are.
func rcRaw(t *testing.T, s *testServer, user, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("X-User-Id", user)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func decodeInto(raw []byte, out any) error {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return errors.New("empty body")
	}
	return jsonUnmarshal(raw, out)
}

// waitStatusOf waits until the server's engine shows user with status.
func waitStatusOf(t *testing.T, s *testServer, user string, want protocol.Status) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.Engine().Status(user).Status != want; {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s", user, s.Engine().Status(user).Status, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func jsonUnmarshal(raw []byte, out any) error { return json.Unmarshal(raw, out) }
