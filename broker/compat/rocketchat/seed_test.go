package rocketchat_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/broker/compat/internal/compattest"
	"github.com/presenced/presenced/broker/compat/rocketchat"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// The vendor pages' example bodies (shared/seeds 000, 001, 003), checked
// against real answers: errors verbatim, successes as subsets (presenced may
// add fields the page leaves out, such as total).

// seed401 is the pages' 401 example; the answer adds success and error.
const seed401 = `{"status": "error", "message": "You must be logged in to do this."}`

// seedCase is one vendor example: a request, its status and the example
// body; exact means the answer holds nothing more.
type seedCase struct {
	name  string
	r     req
	code  int
	want  string
	exact bool
}

func runSeedCases(t *testing.T, w *world, prefix string, cases []seedCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			res := w.do(t, tt.r)
			if res.Status != tt.code {
				t.Fatalf("status %d, want %d: %s", res.Status, tt.code, res.Body)
			}
			want, got := compattest.Decode(t, tt.want), compattest.Decode(t, string(res.Body))
			compattest.Subset(t, want, got)
			if tt.exact {
				compattest.Subset(t, got, want)
			}
			compattest.Golden(t, prefix+tt.name, res)
		})
	}
}

func TestSeedGroupsOnline(t *testing.T) {
	runSeedCases(t, newWorld(t), "seed000_", []seedCase{
		{"success", req{path: "groups.online?_id=" + groupID, as: callerID}, 200, `{
			"online": [{"_id": "47cRd58HnWwpqxhaZ", "username": "test"},
			           {"_id": "BsxzC22xQ43taWdff", "username": "uniqueusername"}],
			"success": true}`, true},
		// The seed page answers a non-member "Not Allowed"; presenced
		// answers a group the caller may not see as it answers a missing
		// one, so that nobody learns which private groups exist.
		{"not_member", req{path: "groups.online?_id=" + groupID, as: outsiderID}, 400,
			`{"success": false, "error": "Group does not exists"}`, true},
		{"invalid_query", req{path: "groups.online", as: callerID}, 400,
			`{"success": false, "error": "Invalid query"}`, true},
		{"unauthorized", req{path: "groups.online?_id=" + groupID}, 401, seed401, false},
	})
}

func TestSeedUsersInRole(t *testing.T) {
	runSeedCases(t, newWorld(t), "seed001_", []seedCase{
		{"success", req{path: "roles.getUsersInRole?role=" + customRole, as: adminID}, 200, `{
			"users": [
			  {"_id": "voakrL3cHjYBwwRPq", "username": "a", "type": "user", "status": "offline", "active": true, "name": "a"},
			  {"_id": "N2s7KG6YkzgJfXbyn", "username": "b", "type": "user", "status": "offline", "active": true, "name": "b"}],
			"success": true}`, false},
		{"role_required", req{path: "roles.getUsersInRole", as: adminID}, 400,
			`{"success": false, "error": "Query param \"role\" is required [error-param-not-provided]", "errorType": "error-param-not-provided"}`, true},
		{"invalid_role", req{path: "roles.getUsersInRole?role=nope", as: adminID}, 400,
			`{"success": false, "error": "[error-invalid-roleId]", "errorType": "error-invalid-roleId"}`, true},
		{"unauthorized", req{path: "roles.getUsersInRole?role=admin"}, 401, seed401, false},
	})
}

// TestSeedUsersPresence reproduces seed 003's example in a world holding only
// its two users. Differences the page forces: presenced ids cannot contain
// '.', so the _ids use '-'; the page's utcOffset "0" and full "true" are
// strings in its example but integer and boolean in its own schema, which
// wins; avatarETag is derived from the avatar URL and only checked present.
func TestSeedUsersPresence(t *testing.T) {
	env := compattest.New(t)
	env.User(t, membership.User{ID: "rocket-cat", Username: "rocket.cat", Name: "Rocket.Cat", Active: true,
		AvatarURL: "https://example.org/rocket.cat.png"})
	env.User(t, membership.User{ID: "rocketchat-internal-admin-test", Username: "rocketchat.internal.admin.test",
		Name: "RocketChat Internal Admin Test", Active: true, UTCOffset: -2, AvatarURL: "https://example.org/admin.png"})
	env.User(t, membership.User{ID: callerID, Username: "caller", Active: true})
	secret := env.Token(t, membership.TokenSpec{Name: "pat", UserID: callerID, Scopes: []string{membership.ScopeConnect}})
	env.Statuses.Set("rocket-cat", protocol.StatusOnline, "", compattest.Now)
	env.Statuses.Set("rocketchat-internal-admin-test", protocol.StatusOnline, "", compattest.Now)
	w := &world{env: env, creds: map[string]string{callerID: secret}, url: serve(t, rocketchat.Config{
		Directory: env.Index, Presence: env.Statuses, Auth: env.Auth, Visibility: env.Everyone,
		Now: func() time.Time { return compattest.Now },
	})}

	res := w.do(t, req{path: "users.presence", as: callerID})
	if res.Status != 200 {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	got := res.JSON(t)
	compattest.Subset(t, compattest.Decode(t, `{
		"users": [
		  {"_id": "rocket-cat", "name": "Rocket.Cat", "username": "rocket.cat", "status": "online", "utcOffset": 0},
		  {"_id": "rocketchat-internal-admin-test", "name": "RocketChat Internal Admin Test",
		   "username": "rocketchat.internal.admin.test", "status": "online", "utcOffset": -2}],
		"full": true,
		"success": true}`), got)
	for _, u := range got["users"].([]any) {
		if tag, _ := u.(map[string]any)["avatarETag"].(string); tag == "" {
			t.Errorf("user %v has no avatarETag", u)
		}
	}
	compattest.Golden(t, "seed003_success", res)

	res = w.do(t, req{path: "users.presence"})
	if res.Status != 401 {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	compattest.Subset(t, compattest.Decode(t, seed401), res.JSON(t))
	compattest.Golden(t, "seed003_unauthorized", res)

	// The documented Presence_broadcast_disabled setting: an empty list.
	url := serve(t, rocketchat.Config{Directory: env.Index, Presence: env.Statuses, Auth: env.Auth, Visibility: env.Everyone, PresenceBroadcastDisabled: true})
	w2 := &world{env: env, creds: w.creds, url: url}
	res = w2.do(t, req{path: "users.presence?ids=rocket-cat", as: callerID})
	compattest.Subset(t, compattest.Decode(t, `{"users": [], "full": true, "success": true}`), res.JSON(t))
}
