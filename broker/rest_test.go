package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/membership"
)

func TestRESTMembership(t *testing.T) {
	s := startServer(t, "")
	u, adm := s.URL, s.Admin

	var user membership.User
	if st := call(t, "POST", u+"/v1/users", adm, map[string]any{"id": "alice", "username": "alice", "name": "Alice"}, &user); st != http.StatusCreated {
		t.Fatalf("create user: %d", st)
	}
	if !user.Active || user.Seq == 0 || user.Type != membership.UserTypeUser {
		t.Fatalf("user defaults: %+v", user)
	}
	call(t, "POST", u+"/v1/users", adm, map[string]any{"id": "bob", "username": "bob"}, nil)
	if st := call(t, "POST", u+"/v1/groups", adm, map[string]any{"id": "team", "name": "Team"}, nil); st != http.StatusCreated {
		t.Fatalf("create group: %d", st)
	}
	if st := call(t, "PUT", u+"/v1/groups/team/members/alice", adm, map[string]any{"role": "owner"}, nil); st != http.StatusOK {
		t.Fatalf("add member: %d", st)
	}
	if st := call(t, "PUT", u+"/v1/groups/team/members/bob", adm, nil, nil); st != http.StatusOK {
		t.Fatalf("add member without body: %d", st)
	}
	var members struct{ Items []membership.Member }
	call(t, "GET", u+"/v1/groups/team/members", adm, nil, &members)
	if len(members.Items) != 2 || members.Items[0].Role != membership.RoleOwner || members.Items[1].Role != membership.RoleMember {
		t.Fatalf("members: %+v", members.Items)
	}
	if st := call(t, "PUT", u+"/v1/users/bob/roles/admin", adm, nil, &user); st != http.StatusOK || !user.HasRole("admin") {
		t.Fatalf("assign role: %d %+v", st, user)
	}
	if st := call(t, "PATCH", u+"/v1/users/bob", adm, map[string]any{"name": "Bob"}, &user); st != http.StatusOK || user.Name != "Bob" || !user.HasRole("admin") {
		t.Fatalf("patch: %d %+v", st, user)
	}
	if st := call(t, "DELETE", u+"/v1/groups/team/members/bob", adm, nil, nil); st != http.StatusNoContent {
		t.Fatalf("remove member: %d", st)
	}
	var groups struct{ Items []membership.Member }
	call(t, "GET", u+"/v1/users/alice/groups", adm, nil, &groups)
	if len(groups.Items) != 1 || groups.Items[0].GroupID != "team" {
		t.Fatalf("groups of alice: %+v", groups.Items)
	}
	if st := call(t, "DELETE", u+"/v1/users/bob", adm, nil, nil); st != http.StatusNoContent {
		t.Fatalf("delete user: %d", st)
	}
	if st := call(t, "GET", u+"/v1/users/bob", adm, nil, nil); st != http.StatusNotFound {
		t.Fatalf("deleted user: %d", st)
	}
}

func TestRESTErrors(t *testing.T) {
	s := startServer(t, "")
	u, adm := s.URL, s.Admin
	var readTok struct{ Token string }
	call(t, "POST", u+"/v1/tokens", adm, map[string]any{"name": "ro", "scopes": []string{"membership:read"}}, &readTok)
	call(t, "POST", u+"/v1/users", adm, map[string]any{"id": "alice", "username": "alice"}, nil)

	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"no token", "GET", "/v1/users", "", nil, 401, "unauthorized"},
		{"bad token", "GET", "/v1/users", "pd_nope", nil, 401, "unauthorized"},
		{"missing scope", "POST", "/v1/users", readTok.Token, map[string]any{"id": "x", "username": "x"}, 403, "forbidden"},
		{"cannot escalate", "POST", "/v1/tokens", readTok.Token, map[string]any{"scopes": []string{"admin"}}, 403, "forbidden"},
		{"unknown field", "POST", "/v1/users", adm, `{"id":"x","username":"x","colour":"red"}`, 400, "bad_request"},
		{"bad json", "POST", "/v1/users", adm, `{"id":`, 400, "bad_request"},
		{"empty body", "POST", "/v1/users", adm, ``, 400, "bad_request"},
		{"two values", "POST", "/v1/users", adm, `{"id":"x","username":"x"}{}`, 400, "bad_request"},
		{"bad id", "POST", "/v1/users", adm, map[string]any{"id": "a b", "username": "x"}, 400, "bad_request"},
		{"long id", "POST", "/v1/users", adm, map[string]any{"id": strings.Repeat("x", 65), "username": "x"}, 400, "bad_request"},
		{"duplicate", "POST", "/v1/users", adm, map[string]any{"id": "alice", "username": "other"}, 409, "conflict"},
		{"too large", "POST", "/v1/users", adm, `{"id":"x","username":"x","name":"` + strings.Repeat("n", 2<<20) + `"}`, 413, "too_large"},
		{"unknown user", "GET", "/v1/users/ghost", adm, nil, 404, "not_found"},
		{"member of unknown group", "PUT", "/v1/groups/nope/members/alice", adm, nil, 404, "not_found"},
		{"bad role", "PUT", "/v1/users/alice/roles/owner", adm, nil, 400, "bad_request"},
		{"bad limit", "GET", "/v1/users?limit=0", adm, nil, 400, "bad_request"},
		{"bad cursor", "GET", "/v1/users?cursor=!!", adm, nil, 400, "bad_request"},
		{"unknown endpoint", "GET", "/v1/nothing", adm, nil, 404, "not_found"},
		{"builtin role", "DELETE", "/v1/roles/admin", adm, nil, 400, "bad_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e apiErr
			st := call(t, c.method, u+c.path, c.token, c.body, &e)
			if st != c.status || e.Error.Code != c.code || e.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", st, e, c.status, c.code)
			}
		})
	}
}

func TestRESTPaginationAndTokens(t *testing.T) {
	s := startServer(t, "")
	u, adm := s.URL, s.Admin
	for i := range 25 {
		call(t, "POST", u+"/v1/users", adm, map[string]any{"id": fmt.Sprintf("u%02d", i), "username": fmt.Sprintf("user%02d", i)}, nil)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		var page struct {
			Items      []membership.User
			NextCursor string
		}
		call(t, "GET", u+"/v1/users?limit=10&cursor="+cursor, adm, nil, &page)
		for _, x := range page.Items {
			seen = append(seen, x.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 25 || seen[0] != "u00" || seen[24] != "u24" {
		t.Fatalf("paged users: %v", seen)
	}

	var tok struct{ ID, Token string }
	if st := call(t, "POST", u+"/v1/tokens", adm, map[string]any{"name": "svc", "scopes": []string{"membership:read"}}, &tok); st != 201 || tok.Token == "" {
		t.Fatalf("create token: %d %+v", st, tok)
	}
	if st := call(t, "GET", u+"/v1/users/u01", tok.Token, nil, nil); st != 200 {
		t.Fatalf("new token: %d", st)
	}
	var list struct{ Items []map[string]any }
	call(t, "GET", u+"/v1/tokens", adm, nil, &list)
	for _, it := range list.Items {
		if _, ok := it["hash"]; ok {
			t.Fatal("token list shows hashes")
		}
	}
	if st := call(t, "DELETE", u+"/v1/tokens/"+tok.ID, adm, nil, nil); st != 204 {
		t.Fatalf("revoke: %d", st)
	}
	if st := call(t, "GET", u+"/v1/users/u01", tok.Token, nil, nil); st != 401 {
		t.Fatalf("revoked token: %d", st)
	}
}

func TestImportEndpoint(t *testing.T) {
	s := startServer(t, "")
	body := `{"kind":"user","id":"a","username":"a"}
{"kind":"group","id":"g","name":"G"}
{"kind":"member","groupId":"g","userId":"a"}
{"kind":"member","groupId":"g","userId":"zz"}
`
	var rep membership.ImportReport
	if st := call(t, "POST", s.URL+"/v1/import", s.Admin, body, &rep); st != 200 || rep.Created != 3 || rep.Failed != 1 || rep.Errors[0].Line != 4 {
		t.Fatalf("import: %d %+v", st, rep)
	}
	if st := call(t, "POST", s.URL+"/v1/import", s.Admin, body, &rep); st != 200 || rep.Unchanged != 3 || rep.Created != 0 {
		t.Fatalf("re-import: %d %+v", st, rep)
	}
}

// TestRestart writes through the API, stops the server, starts a new one on
// the same data directory and reads everything back.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, func(c *broker.Config) { c.AdminToken = "" })
	first := s.FirstRunToken()
	if first == "" {
		t.Fatal("no first-run token")
	}
	call(t, "POST", s.URL+"/v1/users", first, map[string]any{"id": "alice", "username": "alice"}, nil)
	call(t, "POST", s.URL+"/v1/groups", first, map[string]any{"id": "g", "name": "G"}, nil)
	call(t, "PUT", s.URL+"/v1/groups/g/members/alice", first, nil, nil)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, dir, func(c *broker.Config) { c.AdminToken = "" })
	if s2.FirstRunToken() != "" {
		t.Fatal("second run printed a new token")
	}
	var members struct{ Items []membership.Member }
	if st := call(t, "GET", s2.URL+"/v1/groups/g/members", first, nil, &members); st != 200 || len(members.Items) != 1 {
		t.Fatalf("after restart: %d %+v", st, members)
	}
}

func TestHealth(t *testing.T) {
	s := startServer(t, "")
	if st := call(t, "GET", s.URL+"/healthz", "", nil, nil); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	var ready struct{ Ready bool }
	if st := call(t, "GET", s.URL+"/readyz", "", nil, &ready); st != 200 || !ready.Ready {
		t.Fatalf("readyz %d %+v", st, ready)
	}
}
