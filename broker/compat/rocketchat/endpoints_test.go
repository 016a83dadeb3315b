package rocketchat_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/broker/compat/internal/compattest"
	"github.com/presenced/presenced/broker/compat/rocketchat"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// TestEndpoints runs every request form and error case of compat-spec.md
// §0–§3 and the status endpoints against one seeded world; each answer is
// a golden file, and the table states the status code and the users the
// answer must list, so a wrong golden file cannot pass unnoticed.
func TestEndpoints(t *testing.T) {
	w := newWorld(t)
	recent := url.QueryEscape(compattest.Now.Add(-150 * time.Second).UTC().Format(time.RFC3339))
	old := url.QueryEscape(compattest.Now.Add(-10 * time.Minute).UTC().Format(time.RFC3339))
	future := url.QueryEscape(compattest.Now.Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"))
	tests := []struct {
		name  string
		r     req
		code  int
		users []string // ids listed in online/users, in order; nil = not checked
	}{
		// §0 shared behaviour.
		{"unknown_route", req{path: "users.info", as: callerID}, 404, nil},
		{"wrong_method", req{method: "POST", path: "groups.online?_id=" + groupID, as: callerID}, 404, nil},
		{"auth_missing", req{path: "users.presence"}, 401, nil},
		{"auth_token_only", req{path: "users.presence", header: map[string]string{"X-Auth-Token": "x"}}, 401, nil},
		{"auth_user_only", req{path: "users.presence", header: map[string]string{"X-User-Id": callerID}}, 401, nil},
		{"auth_bad_token", req{path: "users.presence", header: map[string]string{"X-User-Id": callerID, "X-Auth-Token": "pd_wrong"}}, 401, nil},
		{"auth_token_of_other_user", req{path: "users.presence", as: callerID, header: map[string]string{"X-User-Id": outsiderID}}, 401, nil},
		{"auth_inactive_user", req{path: "users.presence", as: inactiveID}, 401, nil},

		// §1 groups.online.
		{"online_extra_param_anonymous", req{path: "groups.online?_id=" + groupID + "&x=1"}, 400, nil},
		{"online_id_array", req{path: "groups.online?_id[]=" + groupID, as: callerID}, 400, nil},
		{"online_anonymous", req{path: "groups.online?_id=" + groupID}, 401, nil},
		{"online_no_id", req{path: "groups.online", as: callerID}, 400, nil},
		{"online_empty_id", req{path: "groups.online?_id=", as: callerID}, 400, nil},
		{"online_legacy_query", req{path: "groups.online?query=" + url.QueryEscape(`{"_id":"`+groupID+`"}`), as: callerID}, 200, []string{testID, uniqueID}},
		{"online_legacy_query_other_keys", req{path: "groups.online?query=" + url.QueryEscape(`{"_id":"`+groupID+`","t":"p"}`), as: callerID}, 400, nil},
		{"online_legacy_query_not_json", req{path: "groups.online?query=nope", as: callerID}, 400, nil},
		{"online_unknown_group", req{path: "groups.online?_id=nope", as: callerID}, 400, nil},
		{"online_public_group", req{path: "groups.online?_id=" + publicID, as: callerID}, 400, nil},
		{"online_not_member", req{path: "groups.online?_id=" + groupID, as: outsiderID}, 400, nil},
		{"online_admin_not_member", req{path: "groups.online?_id=" + groupID, as: adminID}, 200, []string{testID, uniqueID}},
		{"online_member", req{path: "groups.online?_id=" + groupID, as: callerID}, 200, []string{testID, uniqueID}},

		// §2 roles.getUsersInRole.
		{"role_missing_anonymous", req{path: "roles.getUsersInRole"}, 400, nil},
		{"role_empty", req{path: "roles.getUsersInRole?role=", as: adminID}, 400, nil},
		{"role_array", req{path: "roles.getUsersInRole?role[]=admin", as: adminID}, 400, nil},
		{"role_extra_param", req{path: "roles.getUsersInRole?role=admin&fields=x", as: adminID}, 400, nil},
		{"role_offset_not_number", req{path: "roles.getUsersInRole?role=admin&offset=abc", as: adminID}, 400, nil},
		{"role_count_empty", req{path: "roles.getUsersInRole?role=admin&count=", as: adminID}, 400, nil},
		{"role_anonymous", req{path: "roles.getUsersInRole?role=admin"}, 401, nil},
		{"role_no_permission", req{path: "roles.getUsersInRole?role=admin", as: callerID}, 403, nil},
		{"role_room_not_allowed", req{path: "roles.getUsersInRole?role=owner&roomId=" + groupID, as: auditorID}, 400, nil},
		{"role_unknown", req{path: "roles.getUsersInRole?role=nope", as: adminID}, 400, nil},
		{"role_global", req{path: "roles.getUsersInRole?role=admin", as: adminID}, 200, []string{adminID}},
		{"role_global_room_ignored", req{path: "roles.getUsersInRole?role=admin&roomId=" + groupID, as: adminID}, 200, []string{adminID}},
		{"role_global_via_permission", req{path: "roles.getUsersInRole?role=" + customRole, as: auditorID}, 200, []string{aID, bID}},
		{"role_paged", req{path: "roles.getUsersInRole?role=" + customRole + "&offset=1&count=1", as: adminID}, 200, []string{bID}},
		{"role_count_unlimited", req{path: "roles.getUsersInRole?role=" + customRole + "&count=0", as: adminID}, 200, []string{aID, bID}},
		{"role_offset_past_end", req{path: "roles.getUsersInRole?role=" + customRole + "&offset=5", as: adminID}, 200, []string{}},
		{"role_sort_query_ignored", req{path: "roles.getUsersInRole?role=" + customRole + "&sort=%7B%7D&query=%7B%7D", as: adminID}, 200, []string{aID, bID}},
		{"role_owner_in_room", req{path: "roles.getUsersInRole?role=owner&roomId=" + groupID, as: adminID}, 200, []string{testID}},
		{"role_moderator_in_room", req{path: "roles.getUsersInRole?role=moderator&roomId=" + groupID, as: adminID}, 200, []string{uniqueID}},
		{"role_leader_any_room", req{path: "roles.getUsersInRole?role=leader", as: adminID}, 200, []string{outsiderID, uniqueID}},
		{"role_leader_unknown_room", req{path: "roles.getUsersInRole?role=leader&roomId=nope", as: adminID}, 200, []string{}},

		// §3 users.presence.
		{"presence_extra_param_anonymous", req{path: "users.presence?ids=a&offset=1"}, 400, nil},
		{"presence_from_array", req{path: "users.presence?from[]=x", as: callerID}, 400, nil},
		{"presence_full", req{path: "users.presence", as: callerID}, 200, []string{testID, uniqueID}},
		{"presence_ids_comma", req{path: "users.presence?ids=" + testID + "," + uniqueID + "," + offlineID + ",nope", as: callerID}, 200, []string{testID, uniqueID}},
		{"presence_ids_repeated", req{path: "users.presence?ids=" + uniqueID + "&ids=" + testID, as: callerID}, 200, []string{uniqueID, testID}},
		{"presence_ids_brackets", req{path: "users.presence?ids[]=" + testID + "&ids[]=" + offlineID, as: callerID}, 200, []string{testID}},
		{"presence_ids_not_trimmed", req{path: "users.presence?ids=" + testID + ",%20" + uniqueID, as: callerID}, 200, []string{testID}},
		{"presence_ids_win_over_from", req{path: "users.presence?ids=" + testID + "&from=" + recent, as: callerID}, 200, []string{testID}},
		{"presence_ids_empty_falls_through", req{path: "users.presence?ids=", as: callerID}, 200, []string{testID, uniqueID}},
		{"presence_from_recent", req{path: "users.presence?from=" + recent, as: outsiderID}, 200, []string{testID, uniqueID}},
		{"presence_from_excludes_caller", req{path: "users.presence?from=" + url.QueryEscape(compattest.Now.Add(-5*time.Minute).UTC().Format(time.RFC3339)), as: callerID}, 200, []string{testID, uniqueID, offlineID}},
		{"presence_from_offline_included", req{path: "users.presence?from=" + url.QueryEscape(compattest.Now.Add(-5*time.Minute).UTC().Format(time.RFC3339)), as: outsiderID}, 200, []string{testID, uniqueID, offlineID, callerID}},
		{"presence_from_old", req{path: "users.presence?from=" + old, as: callerID}, 200, []string{testID, uniqueID}},
		{"presence_from_future", req{path: "users.presence?from=" + future, as: callerID}, 200, []string{}},
		{"presence_from_invalid", req{path: "users.presence?from=yesterday", as: callerID}, 200, []string{testID, uniqueID}},
		{"presence_from_date_only", req{path: "users.presence?from=2026-03-18", as: callerID}, 200, []string{testID, uniqueID}},

		// users.getStatus.
		{"getstatus_anonymous", req{path: "users.getStatus"}, 401, nil},
		{"getstatus_self", req{path: "users.getStatus", as: callerID}, 200, nil},
		{"getstatus_user_id", req{path: "users.getStatus?userId=" + testID, as: callerID}, 200, nil},
		{"getstatus_username", req{path: "users.getStatus?username=uniqueusername", as: callerID}, 200, nil},
		{"getstatus_unknown", req{path: "users.getStatus?userId=nope", as: callerID}, 400, nil},
		{"getstatus_blank", req{path: "users.getStatus?userId=%20", as: callerID}, 400, nil},

		// users.setStatus errors (successes are in TestSetStatus).
		{"setstatus_anonymous", req{method: "POST", path: "users.setStatus", ctype: "application/json", body: `{"status":"away"}`}, 401, nil},
		{"setstatus_get", req{path: "users.setStatus", as: callerID}, 404, nil},
		{"setstatus_empty_body", req{method: "POST", path: "users.setStatus", as: callerID}, 400, nil},
		{"setstatus_not_string", req{method: "POST", path: "users.setStatus", as: callerID, ctype: "application/json", body: `{"status":5}`}, 400, nil},
		{"setstatus_bad_json", req{method: "POST", path: "users.setStatus", as: callerID, ctype: "application/json", body: `{"status":`}, 400, nil},
		{"setstatus_invalid_status", req{method: "POST", path: "users.setStatus", as: callerID, ctype: "application/json", body: `{"status":"dnd"}`}, 400, nil},
		{"setstatus_other_user", req{method: "POST", path: "users.setStatus", as: callerID, ctype: "application/json", body: `{"status":"away","userId":"` + testID + `"}`}, 401, nil},
		{"setstatus_admin_unknown_user", req{method: "POST", path: "users.setStatus", as: adminID, ctype: "application/json", body: `{"status":"away","username":"nobody"}`}, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := w.do(t, tt.r)
			if res.Status != tt.code {
				t.Fatalf("status %d, want %d: %s", res.Status, tt.code, res.Body)
			}
			body := res.JSON(t)
			if tt.code != 200 {
				checkErrorKeys(t, body)
			}
			if tt.users != nil {
				if got := listed(body); !slices.Equal(got, tt.users) {
					t.Errorf("listed %v, want %v", got, tt.users)
				}
			}
			compattest.Golden(t, tt.name, res)
		})
	}
}

// checkErrorKeys asserts what rest-typings' error validators check: success
// false, a string error, and no key outside their list.
func checkErrorKeys(t *testing.T, body map[string]any) {
	t.Helper()
	if body["success"] != false {
		t.Errorf("success = %v", body["success"])
	}
	if _, ok := body["error"].(string); !ok {
		t.Errorf("error = %v", body["error"])
	}
	for k := range body {
		if !slices.Contains([]string{"success", "error", "errorType", "stack", "details", "status", "message"}, k) {
			t.Errorf("key %q is not allowed in an error body", k)
		}
	}
}

// listed returns the _ids of the users or online array of a body.
func listed(body map[string]any) []string {
	arr, _ := body["users"].([]any)
	if arr == nil {
		arr, _ = body["online"].([]any)
	}
	out := []string{}
	for _, u := range arr {
		out = append(out, u.(map[string]any)["_id"].(string))
	}
	return out
}

func TestSetStatus(t *testing.T) {
	w := newWorld(t)
	post := func(as, ctype, body string) compattest.Response {
		t.Helper()
		res := w.do(t, req{method: "POST", path: "users.setStatus", as: as, ctype: ctype, body: body})
		if res.Status != 200 || string(res.Body) != "{\"success\":true}\n" {
			t.Fatalf("answer %d %s", res.Status, res.Body)
		}
		return res
	}
	getStatus := func(as, query string) map[string]any {
		t.Helper()
		return w.do(t, req{path: "users.getStatus" + query, as: as}).JSON(t)
	}

	post(callerID, "application/json", `{"status":"busy","message":"  In a meeting  "}`)
	compattest.Subset(t, map[string]any{"_id": callerID, "status": "busy", "connectionStatus": "busy", "message": "In a meeting", "success": true},
		getStatus(callerID, ""))

	// A message alone keeps the status; a status alone keeps the message.
	post(callerID, "application/x-www-form-urlencoded", "message=Lunch")
	post(callerID, "application/json", `{"status":"away","message":null}`)
	compattest.Subset(t, map[string]any{"status": "away", "message": "Lunch"}, getStatus(callerID, ""))

	// An admin may set another user's status, by userId or username.
	post(adminID, "application/json", `{"status":"offline","username":"test"}`)
	compattest.Subset(t, map[string]any{"_id": testID, "status": "offline"}, getStatus(callerID, "?userId="+testID))
	// Naming oneself is setting one's own status.
	post(callerID, "application/json", fmt.Sprintf(`{"status":"online","userId":%q}`, callerID))

	// A long message is cut to 120 characters.
	long := ""
	for range 130 {
		long += "é"
	}
	post(callerID, "application/json", `{"message":"`+long+`"}`)

	want := []compattest.Write{
		{User: callerID, Status: protocol.StatusBusy, Text: "In a meeting"},
		{User: callerID, Status: "", Text: "Lunch"},
		{User: callerID, Status: protocol.StatusAway, Text: "Lunch"},
		{User: testID, Status: protocol.StatusOffline, Text: "Latest status"},
		{User: callerID, Status: protocol.StatusOnline, Text: "Lunch"},
		{User: callerID, Status: "", Text: long[:240]},
	}
	if got := w.env.Statuses.Writes(); !slices.Equal(got, want) {
		t.Fatalf("writes\n%v\nwant\n%v", got, want)
	}
	// The new status shows through users.presence at once.
	res := w.do(t, req{path: "users.presence?ids=" + callerID, as: outsiderID})
	if got := listed(res.JSON(t)); !slices.Equal(got, []string{callerID}) {
		t.Fatalf("presence lists %v", got)
	}
}

func TestSetStatusDisabled(t *testing.T) {
	w := newWorld(t, func(c *rocketchat.Config) { c.StatusWriter = nil })
	res := w.do(t, req{method: "POST", path: "users.setStatus", as: callerID, ctype: "application/json", body: `{"status":"away"}`})
	if res.Status != 400 {
		t.Fatalf("status %d", res.Status)
	}
	compattest.Golden(t, "setstatus_disabled", res)
}

func TestRejectLegacyQuery(t *testing.T) {
	w := newWorld(t, func(c *rocketchat.Config) { c.RejectLegacyQuery = true })
	res := w.do(t, req{path: "groups.online?query=" + url.QueryEscape(`{"_id":"`+groupID+`"}`), as: callerID})
	compattest.Subset(t, map[string]any{"success": false, "error": "Invalid query"}, res.JSON(t))
}

func TestAuthFailures(t *testing.T) {
	w := newWorld(t)
	// A token past its expiry date is refused like a wrong one.
	secret := w.env.Token(t, membership.TokenSpec{Name: "short", UserID: callerID, Scopes: []string{membership.ScopeConnect},
		ExpiresAt: new(compattest.Now.Add(time.Hour))})
	w.creds[callerID] = secret
	if res := w.do(t, req{path: "users.presence", as: callerID}); res.Status != 200 {
		t.Fatalf("fresh token: %d", res.Status)
	}
	w.env.Advance(2 * time.Hour)
	if res := w.do(t, req{path: "users.presence", as: callerID}); res.Status != 401 {
		t.Fatalf("expired token: %d %s", res.Status, res.Body)
	}

	// A failing backend is a 500 in the vendor's shape, not a 401.
	env := w.env
	url := serve(t, rocketchat.Config{Directory: env.Index, Presence: env.Statuses, Auth: compattest.FailingAuth{Err: compattest.ErrDown}, Visibility: env.Everyone})
	res := (&world{env: env, url: url, creds: w.creds}).do(t, req{path: "users.presence", as: callerID})
	if res.Status != 500 {
		t.Fatalf("status %d", res.Status)
	}
	compattest.Golden(t, "auth_backend_down", res)
}

func TestRateLimit(t *testing.T) {
	var now = compattest.Now
	w := newWorld(t, func(c *rocketchat.Config) {
		c.RateLimit = rocketchat.RateLimit{Calls: 2, Window: time.Minute}
		c.Now = func() time.Time { return now }
	})
	get := func(as string) compattest.Response {
		return w.do(t, req{path: "users.presence", as: as})
	}
	for i, left := range []string{"1", "0"} {
		res := get(callerID)
		if res.Status != 200 || res.Header.Get("X-RateLimit-Remaining") != left || res.Header.Get("X-RateLimit-Limit") != "2" {
			t.Fatalf("call %d: %d remaining %q", i, res.Status, res.Header.Get("X-RateLimit-Remaining"))
		}
	}
	now = now.Add(20 * time.Second)
	res := get(callerID)
	if res.Status != 429 {
		t.Fatalf("third call: %d", res.Status)
	}
	if got, want := res.Header.Get("X-RateLimit-Reset"), fmt.Sprint(compattest.Now.Add(time.Minute).UnixMilli()); got != want {
		t.Errorf("X-RateLimit-Reset = %s, want %s", got, want)
	}
	compattest.Golden(t, "rate_limited", res)
	// Another route has its own budget; admins are not limited.
	if res := w.do(t, req{path: "users.getStatus", as: callerID}); res.Status != 200 {
		t.Fatalf("other route: %d", res.Status)
	}
	for range 3 {
		if res := get(adminID); res.Status != 200 || res.Header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("admin: %d", res.Status)
		}
	}
	// Anonymous calls are refused before they count.
	if res := w.do(t, req{path: "users.presence"}); res.Status != 401 {
		t.Fatalf("anonymous: %d", res.Status)
	}
	now = now.Add(40 * time.Second)
	if res := get(callerID); res.Status != 200 || res.Header.Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("next window: %d", res.Status)
	}
}

func TestNewConfig(t *testing.T) {
	env := compattest.New(t)
	for _, cfg := range []rocketchat.Config{
		{Presence: env.Statuses, Auth: env.Auth, Visibility: env.Everyone},
		{Directory: env.Index, Auth: env.Auth, Visibility: env.Everyone},
		{Directory: env.Index, Presence: env.Statuses},
		{Directory: env.Index, Presence: env.Statuses, Auth: env.Auth, Visibility: env.Everyone, RateLimit: rocketchat.RateLimit{Calls: -1}},
	} {
		if _, err := rocketchat.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
