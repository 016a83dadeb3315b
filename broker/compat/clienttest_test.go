package compat_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/broker/compat/bitrix24"
	"github.com/presenced/presenced/broker/compat/cometchat"
	"github.com/presenced/presenced/broker/compat/internal/compattest"
	"github.com/presenced/presenced/broker/compat/rocketchat"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// FixtureEnv names the environment variable that tells the Node suites
// where the fixture file is.
const FixtureEnv = "PRESENCED_COMPAT_FIXTURE"

// repoRoot is where package.json and node_modules are, seen from this
// package's directory.
const repoRoot = "../.."

// nodePackages must be installed (npm ci at the repository root).
var nodePackages = []string{"@rocket.chat/api-client", "@bitrix24/b24jssdk", "@2bad/bitrix"}

// fixture is what the Node suites read: where the server is, who to be and
// what to expect.
type fixture struct {
	URL        string `json:"url"`
	RocketChat struct {
		UserID     string   `json:"userId"`
		Token      string   `json:"token"`
		AdminID    string   `json:"adminId"`
		AdminToken string   `json:"adminToken"`
		GroupID    string   `json:"groupId"`
		Online     []string `json:"online"`  // groups.online ids, in order
		Present    []string `json:"present"` // users.presence?ids= of Online plus an offline id
		Offline    string   `json:"offline"`
	} `json:"rocketchat"`
	CometChat struct {
		APIKey      string   `json:"apiKey"`
		AuthOnlyKey string   `json:"authOnlyKey"`
		GUID        string   `json:"guid"`
		UIDs        []string `json:"uids"`
		Available   []string `json:"available"`
	} `json:"cometchat"`
	Bitrix24 struct {
		UserSeq int64               `json:"userSeq"`
		Secret  string              `json:"secret"`
		Token   string              `json:"token"`
		GroupID int64               `json:"groupId"`
		Result  []map[string]string `json:"result"`
	} `json:"bitrix24"`
}

// TestVendorClients serves the three handlers on one loopback server, as
// the broker mounts them, and runs the vendors' own client libraries
// against it with node --test (broker/compat/clienttest/*.mjs).
func TestVendorClients(t *testing.T) {
	node, err := exec.LookPath("node")
	missing := err != nil
	for _, p := range nodePackages {
		if _, err := os.Stat(filepath.Join(repoRoot, "node_modules", p, "package.json")); err != nil {
			missing = true
		}
	}
	if missing {
		if os.Getenv("CI") == "" {
			t.Skip("node or node_modules missing: run npm ci at the repository root")
		}
		t.Fatal("node or node_modules missing in CI: .ci/run must install them (npm ci)")
	}

	env := compattest.New(t)
	fx := seed(t, env)
	mux := http.NewServeMux()
	logger := zaptest.NewLogger(t)
	rc, err := rocketchat.New(rocketchat.Config{Directory: env.Index, Presence: env.Statuses, StatusWriter: env.Statuses, Auth: env.Auth, Visibility: env.Everyone, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cometchat.New(cometchat.Config{Directory: env.Index, Presence: env.Statuses, Auth: env.Auth, Visibility: env.Everyone, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	bx, err := bitrix24.New(bitrix24.Config{Directory: env.Index, Auth: env.Auth, Visibility: env.Everyone, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(rocketchat.Prefix, rc)
	mux.Handle(cometchat.Prefix, cc)
	mux.Handle(bitrix24.Prefix, bx)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	fx.URL = srv.URL

	path := filepath.Join(t.TempDir(), "fixture.json")
	raw, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "broker/compat/clienttest/")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), FixtureEnv+"="+path, "NODE_NO_WARNINGS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}

// seed stores one world for all three vendors and returns the fixture
// describing it.
func seed(t *testing.T, env *compattest.Env) fixture {
	t.Helper()
	var fx fixture
	users := []membership.User{
		{ID: "alice", Seq: 1269, Username: "alice", Name: "Alice", Active: true},
		{ID: "bob", Seq: 1271, Username: "bob", Name: "Bob", Active: true},
		{ID: "carol", Seq: 779, Username: "carol", Name: "Carol", Active: true},
		{ID: "root", Seq: 1, Username: "root", Name: "Root", Active: true, Roles: []string{"admin"}},
	}
	for _, u := range users {
		env.User(t, u)
	}
	env.Group(t, membership.Group{ID: "team", Seq: 69, Name: "Team", Type: membership.GroupPrivate})
	for _, m := range []membership.Member{
		{GroupID: "team", UserID: "alice", Role: membership.RoleOwner},
		{GroupID: "team", UserID: "bob", Role: membership.RoleModerator},
		{GroupID: "team", UserID: "carol", Role: membership.RoleMember},
	} {
		env.Member(t, m)
	}
	env.Statuses.Set("alice", protocol.StatusOnline, "", compattest.Now)
	env.Statuses.Set("bob", protocol.StatusBusy, "In a call", compattest.Now)
	connect := func(user string) string {
		return env.Token(t, membership.TokenSpec{Name: "client", UserID: user, Scopes: []string{membership.ScopeConnect}})
	}

	rc := &fx.RocketChat
	rc.UserID, rc.Token = "alice", connect("alice")
	rc.AdminID, rc.AdminToken = "root", connect("root")
	rc.GroupID, rc.Online, rc.Present, rc.Offline = "team", []string{"alice", "bob"}, []string{"alice", "bob"}, "carol"

	cc := &fx.CometChat
	cc.APIKey = env.Token(t, membership.TokenSpec{Name: "rest", Scopes: []string{membership.ScopeMembershipRead}})
	cc.AuthOnlyKey = env.Token(t, membership.TokenSpec{Name: "auth-only", Scopes: []string{membership.ScopeConnect}})
	cc.GUID, cc.UIDs, cc.Available = "team", []string{"alice", "bob", "carol"}, []string{"alice", "bob"}

	bx := &fx.Bitrix24
	bx.UserSeq, bx.Secret, bx.Token, bx.GroupID = 1269, connect("alice"), connect("alice"), 69
	bx.Result = []map[string]string{{"USER_ID": "1269", "ROLE": "A"}, {"USER_ID": "1271", "ROLE": "E"}, {"USER_ID": "779", "ROLE": "K"}}
	return fx
}
