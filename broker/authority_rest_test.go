package broker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// seedOther adds group other with c as its only member (seedTeam: a and b
// in team, c in no group) and makes c busy with a status text.
func seedOther(t *testing.T, s *testServer) {
	t.Helper()
	call(t, "POST", s.URL+"/v1/groups", s.Admin, map[string]any{"id": "other", "name": "Other"}, nil)
	call(t, "PUT", s.URL+"/v1/groups/other/members/c", s.Admin, nil, nil)
	waitMembers(t, s, "other", 1)
	c := mustDial(t, s, userJWT(t, "c", time.Hour))
	c.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy, Text: "secret meeting"})
	waitStatusOf(t, s, "c", protocol.StatusBusy)
}

// TestVisibilityOnNativeREST: a token bound to a user reads presence on
// the native REST API under the rule the WebSocket and the vendors' APIs
// follow: a user it shares no group with reads as offline, or is not
// found where a missing user is not found, and a group it is not in is
// not found; a token bound to no user sees everyone. Before, every read
// of the native API answered everything to any presence:read token.
func TestVisibilityOnNativeREST(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	seedOther(t, s)
	userTok, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"presence:read"}})
	serviceTok, _ := mustIssue(t, s, map[string]any{"scopes": []string{"presence:read"}})
	for _, tc := range []struct {
		name  string
		token string
		sees  bool
	}{{"user a", userTok, false}, {"service", serviceTok, true}} {
		t.Run(tc.name, func(t *testing.T) {
			found := map[bool]int{true: http.StatusOK, false: http.StatusNotFound}[tc.sees]
			var many struct {
				Users []struct{ User, Status, Text string }
			}
			call(t, "GET", s.URL+"/v1/presence/users?ids=c,b", tc.token, nil, &many)
			wantC := map[bool]string{true: "busy", false: "offline"}[tc.sees]
			if len(many.Users) != 2 || many.Users[0].Status != wantC || tc.sees != (many.Users[0].Text != "") {
				t.Errorf("users?ids=c,b: %+v, want c %s", many.Users, wantC)
			}
			var one struct{ Status string }
			if st := call(t, "GET", s.URL+"/v1/presence/users/c", tc.token, nil, &one); st != found || tc.sees && one.Status != "busy" {
				t.Errorf("users/c: %d %+v, want %d", st, one, found)
			}
			if st := call(t, "GET", s.URL+"/v1/presence/users/c/groups", tc.token, nil, nil); st != found {
				t.Errorf("users/c/groups: %d, want %d", st, found)
			}
			if st := call(t, "GET", s.URL+"/v1/presence/groups/other", tc.token, nil, nil); st != found {
				t.Errorf("groups/other: %d, want %d", st, found)
			}
			if st := call(t, "GET", s.URL+"/v1/presence/groups/team", tc.token, nil, nil); st != http.StatusOK {
				t.Errorf("groups/team: %d, want 200", st)
			}
			var counts struct{ Groups []struct{ Group string } }
			call(t, "GET", s.URL+"/v1/presence/counts", tc.token, nil, &counts)
			var groups []string
			for _, g := range counts.Groups {
				groups = append(groups, g.Group)
			}
			if slices.Contains(groups, "other") != tc.sees || !slices.Contains(groups, "team") {
				t.Errorf("counts of %v", groups)
			}
			var changes struct{ Users []struct{ User string } }
			call(t, "GET", s.URL+"/v1/presence/changes?since="+url.QueryEscape(since), tc.token, nil, &changes)
			seen := false
			for _, u := range changes.Users {
				seen = seen || u.User == "c"
			}
			if seen != tc.sees {
				t.Errorf("changes: %+v, want c listed: %v", changes.Users, tc.sees)
			}
			if st := call(t, "GET", s.URL+"/v1/presence/counts/history?group=other", tc.token, nil, nil); st != found {
				t.Errorf("counts/history of other: %d, want %d", st, found)
			}
			if st := call(t, "GET", s.URL+"/v1/presence/counts/history?group=team", tc.token, nil, nil); st != http.StatusOK {
				t.Errorf("counts/history of team: %d, want 200", st)
			}
			// The whole server's figures are for those who see everyone.
			whole := map[bool]int{true: http.StatusOK, false: http.StatusForbidden}[tc.sees]
			if st := call(t, "GET", s.URL+"/v1/presence/counts/history", tc.token, nil, nil); st != whole {
				t.Errorf("counts/history of the server: %d, want %d", st, whole)
			}
			if st := call(t, "GET", s.URL+"/v1/stats", tc.token, nil, nil); st != whole {
				t.Errorf("stats: %d, want %d", st, whole)
			}
		})
	}
}

// TestCometChatMembersUnderTheRules: CometChat's members list shows each
// member's presence. A key bound to a user sees only the groups that user
// may watch (others answer like a group that does not exist), and the key
// of a deactivated user works no more, as everywhere else. Before, both
// answered the group's members and their status.
func TestCometChatMembersUnderTheRules(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	seedOther(t, s)
	get := func(token, group string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/v3/groups/"+group+"/members", nil)
		req.Header.Set("apikey", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	keyA, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"membership:read"}})
	if st := get(keyA, "team"); st != http.StatusOK {
		t.Fatalf("a's key, a's group: %d", st)
	}
	if st, none := get(keyA, "other"), get(keyA, "nosuch"); st != none || st != http.StatusNotFound {
		t.Fatalf("a's key, a group a is not in: %d; a group that does not exist: %d", st, none)
	}
	server, _ := mustIssue(t, s, map[string]any{"scopes": []string{"membership:read"}})
	if st := get(server, "other"); st != http.StatusOK {
		t.Fatalf("a key bound to no user: %d", st)
	}
	keyC, _ := mustIssue(t, s, map[string]any{"userId": "c", "scopes": []string{"membership:read"}})
	call(t, "PATCH", s.URL+"/v1/users/c", s.Admin, map[string]any{"active": false}, nil)
	if st := get(keyC, "other"); st != http.StatusUnauthorized {
		t.Fatalf("the key of a deactivated user: %d", st)
	}
}

// TestTokensOfARemovedIssuerStopWorking: a token works only while the
// token that issued it does. A user with an admin token issued a token
// bound to no user with the admin scope, and one for b; once the user is
// deleted, or deactivated, neither works, and b's WebSocket is closed.
// Before, a removed admin kept admin access through them.
func TestTokensOfARemovedIssuerStopWorking(t *testing.T) {
	for _, remove := range []string{"deleted", "deactivated"} {
		t.Run(remove, func(t *testing.T) {
			s := startServer(t, "")
			seedTeam(t, s)
			ownTok, _ := mustIssue(t, s, map[string]any{"userId": "c", "scopes": []string{"admin"}})
			minted, _, st := issue(t, s, ownTok, map[string]any{"scopes": []string{"admin"}})
			if st != http.StatusCreated {
				t.Fatalf("issue unbound: %d", st)
			}
			forB, _, st := issue(t, s, ownTok, map[string]any{"userId": "b", "scopes": []string{"connect"}})
			if st != http.StatusCreated {
				t.Fatalf("issue for b: %d", st)
			}
			if st := call(t, "GET", s.URL+"/v1/users", minted, nil, nil); st != http.StatusOK {
				t.Fatalf("the minted token before: %d", st)
			}
			b := mustDial(t, s, forB)
			if remove == "deleted" {
				call(t, "DELETE", s.URL+"/v1/users/c", s.Admin, nil, nil)
			} else {
				call(t, "PATCH", s.URL+"/v1/users/c", s.Admin, map[string]any{"active": false}, nil)
			}
			if st := call(t, "GET", s.URL+"/v1/users", minted, nil, nil); st != http.StatusUnauthorized {
				t.Errorf("the token c's token issued, once c is %s: %d", remove, st)
			}
			if code := waitClosed(t, b); code != protocol.CloseUnauthorized {
				t.Errorf("b's WebSocket on a token c's issued closed with %d, want %d", code, protocol.CloseUnauthorized)
			}
			if remove == "deactivated" {
				call(t, "PATCH", s.URL+"/v1/users/c", s.Admin, map[string]any{"active": true}, nil)
				if st := call(t, "GET", s.URL+"/v1/users", minted, nil, nil); st != http.StatusOK {
					t.Errorf("the minted token once c is active again: %d", st)
				}
			}
		})
	}
}

// TestRefreshNeedsAWebSocketCredential: a WebSocket's refresh takes only a
// credential that could open it: a user token without connect is refused,
// and the connection stays on the credential it had. Before, a token with
// only membership:read replaced it, and revoking the connect token left
// the connection open.
func TestRefreshNeedsAWebSocketCredential(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	connectTok, connectID := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"connect"}})
	narrow, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"membership:read"}})
	a := mustDial(t, s, connectTok)
	if f := a.reply(protocol.ClientFrame{Op: protocol.OpRefresh, Token: narrow}); f.Op != protocol.OpError {
		t.Fatalf("refresh with a token lacking connect: %+v, want an error", f)
	}
	call(t, "DELETE", s.URL+"/v1/tokens/"+connectID, s.Admin, nil, nil)
	if code := waitClosed(t, a); code != protocol.CloseUnauthorized {
		t.Fatalf("closed with %d after its token was revoked, want %d", code, protocol.CloseUnauthorized)
	}
}

// TestPublishForOthersNeedsABackend: through the backend status API a
// token bound to a user states only that user's status; a token bound to
// no user states anyone's. Before, a user's presence:publish token set any
// user's status, one event or a batch.
func TestPublishForOthersNeedsABackend(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	userTok, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"presence:publish"}})
	backend, _ := mustIssue(t, s, map[string]any{"scopes": []string{"presence:publish"}})
	status := func(token, user string) int {
		return call(t, "POST", s.URL+"/v1/presence/status", token,
			map[string]any{"user": user, "status": "busy", "source": "crm"}, nil)
	}
	if st := status(userTok, "b"); st != http.StatusForbidden {
		t.Errorf("a's token stating b's status: %d, want 403", st)
	}
	if st := status(userTok, "a"); st != http.StatusOK {
		t.Errorf("a's token stating a's status: %d, want 200", st)
	}
	if st := status(backend, "b"); st != http.StatusOK {
		t.Errorf("a backend stating b's status: %d, want 200", st)
	}
	var batch struct {
		Results []struct {
			OK    bool
			Error map[string]string
		}
	}
	call(t, "POST", s.URL+"/v1/presence/status/batch", userTok, map[string]any{"events": []map[string]any{
		{"user": "a", "status": "away", "source": "crm"}, {"user": "b", "status": "away", "source": "crm"},
	}}, &batch)
	if len(batch.Results) != 2 || !batch.Results[0].OK || batch.Results[1].Error["code"] != "forbidden" {
		t.Errorf("a's batch for a and b: %+v, want a ok and b forbidden", batch.Results)
	}
}

// TestPublishForOthersTellsNothingOfThem: a token bound to a user that
// states another user's status is refused alike whether that user exists
// or not. Before, an existing user was 403 and a missing one 404, so any
// user's token told which ids exist, hidden users among them.
func TestPublishForOthersTellsNothingOfThem(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	userTok, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"presence:publish"}})
	answer := func(path string, body any) string {
		t.Helper()
		var out any
		st := call(t, "POST", s.URL+path, userTok, body, &out)
		b, _ := json.Marshal(out)
		return fmt.Sprintf("%d %s", st, b)
	}
	for _, path := range []string{"/v1/presence/status", "/v1/presence/status/batch"} {
		body := func(user string) any {
			ev := map[string]any{"user": user, "status": "busy", "source": "crm"}
			if strings.HasSuffix(path, "batch") {
				return map[string]any{"events": []any{ev}}
			}
			return ev
		}
		hidden, missing := answer(path, body("c")), answer(path, body("ghost"))
		if hidden != missing {
			t.Errorf("%s: for hidden c %s, for missing ghost %s", path, hidden, missing)
		}
	}
}

// TestTokensOfAnExpiredIssuerStopWorking: a token works only while the
// token that issued it does, expiry included. A token with the admin
// scope that expires issues tokens of any lifetime, and they stop with
// it: a request is refused as expired and a WebSocket opened on one is
// closed with 4001 when the issuer expires. Before, both went on working.
func TestTokensOfAnExpiredIssuerStopWorking(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	expires := time.Now().Add(2 * time.Second)
	parent, _ := mustIssue(t, s, map[string]any{"userId": "c", "scopes": []string{"admin"}, "expiresAt": expires.UTC().Format(time.RFC3339Nano)})
	minted, _, st := issue(t, s, parent, map[string]any{"scopes": []string{"admin"}})
	if st != http.StatusCreated {
		t.Fatalf("issue unbound: %d", st)
	}
	forB, _, st := issue(t, s, parent, map[string]any{"userId": "b", "scopes": []string{"connect"}})
	if st != http.StatusCreated {
		t.Fatalf("issue for b: %d", st)
	}
	b := mustDial(t, s, forB)
	if st := call(t, "GET", s.URL+"/v1/users", minted, nil, nil); st != http.StatusOK {
		t.Fatalf("the minted token before its issuer expired: %d", st)
	}
	if code := waitClosed(t, b); code != protocol.CloseTokenExpired {
		t.Errorf("b's WebSocket on a token of an expiring issuer closed with %d, want %d", code, protocol.CloseTokenExpired)
	}
	if time.Now().Before(expires) {
		t.Errorf("b's WebSocket closed %v before its issuer expired", time.Until(expires))
	}
	var out struct{ Error struct{ Code string } }
	if st := call(t, "GET", s.URL+"/v1/users", minted, nil, &out); st != http.StatusUnauthorized || out.Error.Code != "token_expired" {
		t.Errorf("the minted token once its issuer expired: %d %q, want 401 token_expired", st, out.Error.Code)
	}
}

// TestDeletedUserLeavesNoPresence: deleting a user takes the status that
// backends and the user stated with it. Before, a bulk read and the
// change list still showed the deleted user busy with its text, and a new
// user created with the same id inherited both, shown to its groups.
func TestDeletedUserLeavesNoPresence(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	addTeamMember(t, s, "x", 3)
	if st := call(t, "POST", s.URL+"/v1/presence/status", s.Admin,
		map[string]any{"user": "x", "status": "busy", "text": "x's secret", "source": "crm"}, nil); st != http.StatusOK {
		t.Fatalf("publish: %d", st)
	}
	if err := s.Engine().SetManual(t.Context(), "x", presence.Manual{Status: protocol.StatusAway, Text: "x's own words"}); err != nil {
		t.Fatal(err)
	}
	if st := call(t, "DELETE", s.URL+"/v1/users/x", s.Admin, nil, nil); st != http.StatusNoContent {
		t.Fatalf("delete x: %d", st)
	}
	type member struct{ User, Status, Text string }
	bulk := func() member {
		var out struct{ Users []member }
		call(t, "GET", s.URL+"/v1/presence/users?ids=x", s.Admin, nil, &out)
		if len(out.Users) != 1 {
			t.Fatalf("bulk read: %+v", out)
		}
		return out.Users[0]
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := bulk()
		if m.Status == "offline" && m.Text == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted user still reads %+v", m)
		}
	}
	call(t, "POST", s.URL+"/v1/users", s.Admin, map[string]any{"id": "x", "username": "user-x2"}, nil)
	call(t, "PUT", s.URL+"/v1/groups/team/members/x", s.Admin, nil, nil)
	waitMembers(t, s, "team", 3)
	var snap struct{ Members []member }
	call(t, "GET", s.URL+"/v1/presence/groups/team", s.Admin, nil, &snap)
	for _, m := range snap.Members {
		if m.User == "x" {
			t.Errorf("the new user x inherited %+v", m)
		}
	}
}

// TestMembershipReadsUnderTheRules: a token bound to a user reads the
// native membership API under the rules every other API follows, the
// CometChat members endpoint among them: the users it may see (others
// are not found, as missing ones are, and left out of lists), the groups
// it may watch, and no export of the whole membership. A token bound to
// no user reads everything. Before, a user's membership:read token read
// every group's members, every user and the export.
func TestMembershipReadsUnderTheRules(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) { c.Limits.RESTRate = -1 })
	seedTeam(t, s)
	seedOther(t, s)
	call(t, "PUT", s.URL+"/v1/groups/other/members/b", s.Admin, nil, nil) // b: team and other
	waitMembers(t, s, "other", 2)
	user, _ := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"membership:read"}})
	service, _ := mustIssue(t, s, map[string]any{"scopes": []string{"membership:read"}})
	answer := func(token, path string) string {
		t.Helper()
		var out any
		st := call(t, "GET", s.URL+path, token, nil, &out)
		b, _ := json.Marshal(out)
		return fmt.Sprintf("%d %s", st, b)
	}
	for _, tt := range []struct{ path, id string }{
		{"/v1/users/%s", "c"},
		{"/v1/users/%s/groups", "c"},
		{"/v1/groups/%s", "other"},
		{"/v1/groups/%s/members", "other"},
	} {
		hidden := answer(user, fmt.Sprintf(tt.path, tt.id))
		missing := strings.ReplaceAll(answer(user, fmt.Sprintf(tt.path, "ghost")), "ghost", tt.id)
		if !strings.HasPrefix(hidden, "404 ") || hidden != missing {
			t.Errorf("a's token, %s: %s; for a missing one: %s", fmt.Sprintf(tt.path, tt.id), hidden, missing)
		}
	}
	ids := func(token, path string) string {
		t.Helper()
		var got []string
		for cursor := ""; ; {
			var page struct {
				Items []struct {
					ID      string
					GroupID string
				}
				NextCursor string
			}
			if st := call(t, "GET", s.URL+path+"?limit=2&cursor="+cursor, token, nil, &page); st != http.StatusOK {
				t.Fatalf("%s: %d", path, st)
			}
			for _, it := range page.Items {
				got = append(got, it.ID+it.GroupID)
			}
			if cursor = page.NextCursor; cursor == "" {
				return strings.Join(got, ",")
			}
		}
	}
	for _, tt := range []struct{ token, path, want string }{
		{user, "/v1/users", "a,b"},
		{user, "/v1/groups", "team"},
		{user, "/v1/users/b/groups", "team"},
		{service, "/v1/users", "a,b,c"},
		{service, "/v1/groups", "other,team"},
		{service, "/v1/users/b/groups", "other,team"},
	} {
		if got := ids(tt.token, tt.path); got != tt.want {
			who := "a's token"
			if tt.token == service {
				who = "a service token"
			}
			t.Errorf("%s, %s: %s, want %s", who, tt.path, got, tt.want)
		}
	}
	if st := call(t, "GET", s.URL+"/v1/export", user, nil, nil); st != http.StatusForbidden {
		t.Errorf("a's token, the export: %d, want 403", st)
	}
	if st := call(t, "GET", s.URL+"/v1/export", service, nil, nil); st != http.StatusOK {
		t.Errorf("a service token, the export: %d, want 200", st)
	}
}
