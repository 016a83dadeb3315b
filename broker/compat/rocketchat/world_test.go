package rocketchat_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/broker/compat/internal/compattest"
	"github.com/presenced/presenced/broker/compat/rocketchat"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// Ids of the seeded world. The group, the caller and the two online users
// are the vendor page's examples (seed 000); a and b hold seed 001's role.
const (
	groupID    = "5HmCfpoB7jp2uibTC"
	publicID   = "public-group"
	otherGroup = "second-group"
	callerID   = "rbAXPnMktTFbNpwtJ"
	testID     = "47cRd58HnWwpqxhaZ"
	uniqueID   = "BsxzC22xQ43taWdff"
	offlineID  = "offline-user"
	outsiderID = "outsider"
	adminID    = "admin-user"
	auditorID  = "auditor-user"
	inactiveID = "inactive-user"
	aID        = "voakrL3cHjYBwwRPq"
	bID        = "N2s7KG6YkzgJfXbyn"
	customRole = "653ec9873c7460e18e6f"
)

type world struct {
	env   *compattest.Env
	url   string
	creds map[string]string // user id → X-Auth-Token
}

// newWorld seeds users, groups, roles and statuses into a real store and
// serves a Handler over them on 127.0.0.1.
func newWorld(t *testing.T, mods ...func(*rocketchat.Config)) *world {
	t.Helper()
	env := compattest.New(t)
	ctx := context.Background()
	for _, r := range []membership.Role{
		{ID: customRole, Name: "Custom role", Scope: membership.ScopeGlobal},
		{ID: "auditor", Name: "auditor", Scope: membership.ScopeGlobal},
	} {
		if err := env.Store.PutRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	users := []membership.User{
		{ID: callerID, Username: "caller", Name: "Caller", Active: true},
		{ID: testID, Username: "test", Name: "Test", Active: true, UTCOffset: 2},
		{ID: uniqueID, Username: "uniqueusername", Active: true, AvatarURL: "https://example.org/u.png"},
		{ID: offlineID, Username: "offline.user", Active: true},
		{ID: outsiderID, Username: "outsider", Active: true},
		{ID: adminID, Username: "root", Active: true, Roles: []string{"admin"}},
		{ID: auditorID, Username: "auditor", Active: true, Roles: []string{"auditor"}},
		{ID: inactiveID, Username: "gone", Active: false},
		{ID: aID, Username: "a", Name: "a", Active: true, Roles: []string{customRole}},
		{ID: bID, Username: "b", Name: "b", Active: true, Roles: []string{customRole}},
	}
	for _, u := range users {
		env.User(t, u)
	}
	env.Group(t, membership.Group{ID: groupID, Name: "Private", Type: membership.GroupPrivate})
	env.Group(t, membership.Group{ID: publicID, Name: "Public", Type: membership.GroupPublic})
	env.Group(t, membership.Group{ID: otherGroup, Name: "Second", Type: membership.GroupPrivate})
	for _, m := range []membership.Member{
		{GroupID: groupID, UserID: callerID, Role: membership.RoleMember},
		{GroupID: groupID, UserID: testID, Role: membership.RoleOwner},
		{GroupID: groupID, UserID: uniqueID, Role: membership.RoleModerator, Roles: []string{"leader"}},
		{GroupID: groupID, UserID: offlineID, Role: membership.RoleMember},
		{GroupID: publicID, UserID: callerID, Role: membership.RoleOwner},
		{GroupID: otherGroup, UserID: outsiderID, Role: membership.RoleOwner, Roles: []string{"leader"}},
		{GroupID: otherGroup, UserID: uniqueID, Role: membership.RoleMember, Roles: []string{"leader"}},
	} {
		env.Member(t, m)
	}
	creds := map[string]string{}
	for _, id := range []string{callerID, outsiderID, adminID, auditorID, inactiveID} {
		creds[id] = env.Token(t, membership.TokenSpec{Name: "pat", UserID: id, Scopes: []string{membership.ScopeConnect}})
	}
	now := compattest.Now
	env.Statuses.Set(testID, protocol.StatusOnline, "Latest status", now.Add(-time.Minute))
	env.Statuses.Set(uniqueID, protocol.StatusAway, "", now.Add(-2*time.Minute))
	env.Statuses.Set(offlineID, protocol.StatusOffline, "", now.Add(-3*time.Minute))
	env.Statuses.Set(callerID, protocol.StatusOffline, "", now.Add(-4*time.Minute))
	env.Statuses.Set(aID, protocol.StatusOffline, "", now.Add(-time.Hour))

	cfg := rocketchat.Config{
		Directory:    env.Index,
		Presence:     env.Statuses,
		StatusWriter: env.Statuses,
		Auth:         env.Auth,
		Visibility:   env.Everyone,
		Logger:       zaptest.NewLogger(t),
		Now:          func() time.Time { return now },
		Permissions:  map[string][]string{"access-permissions": {"auditor"}},
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	return &world{env: env, url: serve(t, cfg), creds: creds}
}

// serve runs a Handler for cfg on 127.0.0.1 and returns its base URL.
func serve(t *testing.T, cfg rocketchat.Config) string {
	t.Helper()
	h, err := rocketchat.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return compattest.Serve(t, h)
}

// req is one request of a test table.
type req struct {
	method string // default GET
	path   string // after /api/v1/
	as     string // user id whose credentials to send; "" for none
	header map[string]string
	body   string
	ctype  string
}

func (w *world) do(t *testing.T, r req) compattest.Response {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	hr, err := http.NewRequest(method, w.url+"/api/v1/"+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.as != "" {
		hr.Header.Set("X-User-Id", r.as)
		hr.Header.Set("X-Auth-Token", w.creds[r.as])
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	res := compattest.Do(t, hr)
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := res.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	return res
}
