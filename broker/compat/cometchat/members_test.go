package cometchat_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/broker/compat/cometchat"
	"github.com/presenced/presenced/broker/compat/internal/compattest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

const guid = "superheroes"

type world struct {
	env  *compattest.Env
	url  string
	keys map[string]string // name → apikey
}

// seedCursor is the cursor time of the vendor page's example.
var seedCursor = time.Unix(1638354799, 0)

// newWorld seeds the vendor page's example group (seed 002) into a real
// store and serves a Handler over it on 127.0.0.1.
func newWorld(t *testing.T, mods ...func(*cometchat.Config)) *world {
	t.Helper()
	env := compattest.New(t)
	created := time.Unix(1629869270, 0)
	for _, u := range []membership.User{
		{ID: "superhero2", Username: "superhero2", Name: "Captain America", Active: true, CreatedAt: created,
			AvatarURL: "https://data-us.cometchat.io/assets/images/avatars/captainamerica.png"},
		{ID: "superhero3", Username: "superhero3", Name: "Captain America", Active: true, CreatedAt: created,
			AvatarURL: "https://data-us.cometchat.io/assets/images/avatars/captainamerica.png"},
		{ID: "superhero5", Username: "superhero5", Name: "Cyclops", Active: true, CreatedAt: created,
			AvatarURL: "https://data-us.cometchat.io/assets/images/avatars/cyclops.png"},
		{ID: "superhero4", Username: "superhero4", Name: "Wolverine", Active: true, CreatedAt: created,
			AvatarURL: "https://data-us.cometchat.io/assets/images/avatars/wolverine.png"},
		{ID: "superhero6", Username: "superhero6", Active: true, CreatedAt: created},
		{ID: "retired", Username: "retired", Name: "Retired", Active: false, CreatedAt: created},
	} {
		env.User(t, u)
	}
	env.Group(t, membership.Group{ID: guid, Name: "Superheroes", Type: membership.GroupPublic})
	env.Group(t, membership.Group{ID: "empty", Name: "Empty", Type: membership.GroupPrivate})
	joined := time.Unix(1638360106, 0)
	for _, m := range []membership.Member{
		{GroupID: guid, UserID: "superhero2", Role: membership.RoleMember, JoinedAt: joined},
		{GroupID: guid, UserID: "superhero3", Role: membership.RoleMember, JoinedAt: joined},
		{GroupID: guid, UserID: "superhero5", Role: membership.RoleModerator, JoinedAt: joined},
		{GroupID: guid, UserID: "superhero4", Role: membership.RoleOwner, JoinedAt: time.Unix(1638359534, 0)},
		{GroupID: guid, UserID: "retired", Role: membership.RoleMember, JoinedAt: joined},
	} {
		env.Member(t, m)
	}
	keys := map[string]string{
		"full":     env.Token(t, membership.TokenSpec{Name: "rest", Scopes: []string{membership.ScopeMembershipRead}}),
		"admin":    env.Token(t, membership.TokenSpec{Name: "admin", Scopes: []string{membership.ScopeAdmin}}),
		"authOnly": env.Token(t, membership.TokenSpec{Name: "auth", Scopes: []string{membership.ScopeConnect}}),
		"expiring": env.Token(t, membership.TokenSpec{Name: "exp", Scopes: []string{membership.ScopeMembershipRead},
			ExpiresAt: new(compattest.Now.Add(time.Hour))}),
	}
	cfg := cometchat.Config{
		Directory: env.Index, Presence: env.Statuses, Auth: env.Auth, Visibility: env.Everyone,
		Logger: zaptest.NewLogger(t), Now: func() time.Time { return seedCursor },
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	return &world{env: env, url: serve(t, cfg), keys: keys}
}

func serve(t *testing.T, cfg cometchat.Config) string {
	t.Helper()
	h, err := cometchat.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return compattest.Serve(t, h)
}

type req struct {
	method string
	path   string // after /v3/
	key    string // name in world.keys, or "" for no apikey header
	header map[string]string
}

func (w *world) do(t *testing.T, r req) compattest.Response {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	hr, err := http.NewRequest(method, w.url+"/v3/"+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.key != "" {
		hr.Header.Set("apikey", w.keys[r.key])
	}
	for k, v := range r.header {
		hr.Header[k] = []string{v} // as sent, not canonicalised
	}
	res := compattest.Do(t, hr)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return res
}

// TestSeedExample checks the vendor page's example against a real answer.
// The page's own example is inconsistent (total 0, count 5, four items);
// presenced counts truly, so meta is checked separately. link, metadata and
// conversationId have no presenced source and are left out; updatedAt is
// the store's time of the last profile write.
func TestSeedExample(t *testing.T) {
	w := newWorld(t)
	res := w.do(t, req{path: "groups/" + guid + "/members", key: "full"})
	if res.Status != 200 {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	got := res.JSON(t)
	compattest.Subset(t, compattest.Decode(t, `{
	  "data": [
	    {"uid": "superhero2", "name": "Captain America", "avatar": "https://data-us.cometchat.io/assets/images/avatars/captainamerica.png",
	     "status": "offline", "role": "default", "scope": "participant", "joinedAt": 1638360106, "createdAt": 1629869270},
	    {"uid": "superhero3", "name": "Captain America", "avatar": "https://data-us.cometchat.io/assets/images/avatars/captainamerica.png",
	     "status": "offline", "role": "default", "scope": "participant", "joinedAt": 1638360106, "createdAt": 1629869270},
	    {"uid": "superhero5", "name": "Cyclops", "avatar": "https://data-us.cometchat.io/assets/images/avatars/cyclops.png",
	     "status": "offline", "role": "default", "scope": "moderator", "joinedAt": 1638360106, "createdAt": 1629869270},
	    {"uid": "superhero4", "name": "Wolverine", "avatar": "https://data-us.cometchat.io/assets/images/avatars/wolverine.png",
	     "status": "offline", "role": "default", "scope": "admin", "joinedAt": 1638359534, "createdAt": 1629869270}
	  ],
	  "meta": {"pagination": {"total": 4, "count": 4, "per_page": 100, "current_page": 1, "total_pages": 1}},
	  "cursor": {"updatedAt": 1638354799, "affix": "prepend"}
	}`), got)
	for _, m := range got["data"].([]any) {
		if _, ok := m.(map[string]any)["updatedAt"].(float64); !ok {
			t.Errorf("member %v has no updatedAt", m)
		}
	}
	compattest.Golden(t, "seed002_success", res)
}

func TestMembers(t *testing.T) {
	w := newWorld(t)
	w.env.Statuses.Set("superhero3", protocol.StatusBusy, "", compattest.Now)
	w.env.Statuses.Set("superhero4", protocol.StatusOnline, "", compattest.Now)
	tests := []struct {
		name string
		r    req
		code int
		uids []string // listed members in order; nil = not checked
		meta []int    // total, count, per_page, current_page, total_pages
	}{
		{"all", req{path: "groups/" + guid + "/members", key: "full"}, 200,
			[]string{"superhero2", "superhero3", "superhero5", "superhero4"}, []int{4, 4, 100, 1, 1}},
		{"admin_key", req{path: "groups/" + guid + "/members", key: "admin"}, 200, []string{"superhero2", "superhero3", "superhero5", "superhero4"}, nil},
		{"header_case", req{path: "groups/" + guid + "/members", header: map[string]string{"apiKey": w.keys["full"]}}, 200, []string{"superhero2", "superhero3", "superhero5", "superhero4"}, nil},
		{"page_2", req{path: "groups/" + guid + "/members?perPage=3&page=2", key: "full"}, 200, []string{"superhero4"}, []int{4, 1, 3, 2, 2}},
		{"page_past_end", req{path: "groups/" + guid + "/members?perPage=3&page=9", key: "full"}, 200, []string{}, []int{4, 0, 3, 9, 2}},
		{"empty_params_default", req{path: "groups/" + guid + "/members?perPage=&page=&status=&scopes=", key: "full"}, 200, []string{"superhero2", "superhero3", "superhero5", "superhero4"}, []int{4, 4, 100, 1, 1}},
		{"status_available", req{path: "groups/" + guid + "/members?status=available", key: "full"}, 200, []string{"superhero3", "superhero4"}, []int{2, 2, 100, 1, 1}},
		{"status_offline", req{path: "groups/" + guid + "/members?status=offline", key: "full"}, 200, []string{"superhero2", "superhero5"}, nil},
		{"scopes_comma", req{path: "groups/" + guid + "/members?scopes=admin,moderator", key: "full"}, 200, []string{"superhero5", "superhero4"}, nil},
		{"scopes_brackets", req{path: "groups/" + guid + "/members?scopes[]=admin&scopes[]=participant", key: "full"}, 200, []string{"superhero2", "superhero3", "superhero4"}, nil},
		{"scopes_repeated", req{path: "groups/" + guid + "/members?scopes=moderator&scopes=participant&status=offline", key: "full"}, 200, []string{"superhero2", "superhero5"}, nil},
		{"empty_group", req{path: "groups/empty/members", key: "full"}, 200, []string{}, []int{0, 0, 100, 1, 1}},

		{"no_apikey", req{path: "groups/" + guid + "/members"}, 401, nil, nil},
		{"unknown_apikey", req{path: "groups/" + guid + "/members", header: map[string]string{"apikey": "pd_unknown"}}, 401, nil, nil},
		{"auth_only_key", req{path: "groups/" + guid + "/members", key: "authOnly"}, 403, nil, nil},
		{"per_page_not_int", req{path: "groups/" + guid + "/members?perPage=ten", key: "full"}, 400, nil, nil},
		{"per_page_zero", req{path: "groups/" + guid + "/members?perPage=0", key: "full"}, 400, nil, nil},
		{"per_page_too_big", req{path: "groups/" + guid + "/members?perPage=1001", key: "full"}, 400, nil, nil},
		{"page_zero", req{path: "groups/" + guid + "/members?page=0", key: "full"}, 400, nil, nil},
		{"status_invalid", req{path: "groups/" + guid + "/members?status=busy", key: "full"}, 400, nil, nil},
		{"scopes_invalid", req{path: "groups/" + guid + "/members?scopes=admin,owner", key: "full"}, 400, nil, nil},
		{"many_invalid", req{path: "groups/" + guid + "/members?perPage[]=1&page=x&status[]=offline&scopes=x", key: "full"}, 400, nil, nil},
		{"guid_not_found", req{path: "groups/nope/members", key: "full"}, 404, nil, nil},
		{"unknown_route", req{path: "users", key: "full"}, 404, nil, nil},
		{"empty_guid", req{path: "groups//members", key: "full"}, 404, nil, nil},
		{"post", req{method: "POST", path: "groups/" + guid + "/members", key: "full"}, 405, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := w.do(t, tt.r)
			if res.Status != tt.code {
				t.Fatalf("status %d, want %d: %s", res.Status, tt.code, res.Body)
			}
			body := res.JSON(t)
			if tt.code != 200 {
				e, _ := body["error"].(map[string]any)
				if e["source"] != "chat-api" || e["code"] == nil || e["message"] == nil || e["devMessage"] == nil {
					t.Errorf("not an error envelope: %s", res.Body)
				}
			}
			if tt.uids != nil {
				var got []string
				for _, m := range body["data"].([]any) {
					got = append(got, m.(map[string]any)["uid"].(string))
				}
				if !slices.Equal(got, tt.uids) && !(len(got) == 0 && len(tt.uids) == 0) {
					t.Errorf("members %v, want %v", got, tt.uids)
				}
			}
			if tt.meta != nil {
				p := body["meta"].(map[string]any)["pagination"].(map[string]any)
				got := []int{int(p["total"].(float64)), int(p["count"].(float64)), int(p["per_page"].(float64)),
					int(p["current_page"].(float64)), int(p["total_pages"].(float64))}
				if !slices.Equal(got, tt.meta) {
					t.Errorf("pagination %v, want %v", got, tt.meta)
				}
			}
			compattest.Golden(t, tt.name, res)
		})
	}
}

func TestAppID(t *testing.T) {
	w := newWorld(t, func(c *cometchat.Config) { c.AppID = "208136f5ba34a5a2" })
	path := "groups/" + guid + "/members"
	for _, tt := range []struct {
		name  string
		appid string
		code  int
	}{
		{"appid_missing", "", 401},
		{"appid_wrong", "nope", 401},
		{"appid_right", "208136f5ba34a5a2", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := req{path: path, key: "full", header: map[string]string{}}
			if tt.appid != "" {
				r.header["appId"] = tt.appid
			}
			res := w.do(t, r)
			if res.Status != tt.code {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			if tt.code != 200 {
				compattest.Golden(t, tt.name, res)
			}
		})
	}
}

func TestKeyFailures(t *testing.T) {
	w := newWorld(t)
	path := "groups/" + guid + "/members"
	if res := w.do(t, req{path: path, key: "expiring"}); res.Status != 200 {
		t.Fatalf("fresh key: %d", res.Status)
	}
	w.env.Advance(2 * time.Hour)
	res := w.do(t, req{path: path, key: "expiring"})
	if res.Status != 401 || res.JSON(t)["error"].(map[string]any)["code"] != "AUTH_ERR_APIKEY_NOT_FOUND" {
		t.Fatalf("expired key: %d %s", res.Status, res.Body)
	}

	down := &world{env: w.env, keys: w.keys, url: serve(t, cometchat.Config{
		Directory: w.env.Index, Presence: w.env.Statuses, Auth: compattest.FailingAuth{Err: compattest.ErrDown},
		Visibility: w.env.Everyone,
	})}
	res = down.do(t, req{path: path, key: "full"})
	if res.Status != 500 {
		t.Fatalf("backend down: %d", res.Status)
	}
	compattest.Golden(t, "auth_backend_down", res)
}

func TestNewConfig(t *testing.T) {
	env := compattest.New(t)
	for _, cfg := range []cometchat.Config{
		{Presence: env.Statuses, Auth: env.Auth, Visibility: env.Everyone},
		{Directory: env.Index, Auth: env.Auth, Visibility: env.Everyone},
		{Directory: env.Index, Presence: env.Statuses, Visibility: env.Everyone},
		{Directory: env.Index, Presence: env.Statuses, Auth: env.Auth},
	} {
		if _, err := cometchat.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
