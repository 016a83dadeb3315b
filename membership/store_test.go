package membership_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"go.uber.org/zap/zaptest"
)

func openStore(t testing.TB, s *server.Server) *membership.Store {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := membership.Open(ctx, membership.Config{JetStream: js, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestUsersGroupsMembers(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, natstest.Start(t))
	ix := st.Index()

	var mu sync.Mutex
	var feed []string
	cancel := st.Subscribe(func(c membership.Change) {
		mu.Lock()
		defer mu.Unlock()
		feed = append(feed, fmt.Sprintf("%s:%v", c.Kind, c.Deleted))
	})
	defer cancel()

	alice := must[membership.User](t)(st.CreateUser(ctx, membership.User{ID: "alice", Username: "alice", Name: "Alice", Active: true, Roles: []string{"admin"}}))
	bob := must[membership.User](t)(st.CreateUser(ctx, membership.User{ID: "bob", Username: "bob", Active: true}))
	if alice.Seq == 0 || bob.Seq != alice.Seq+1 {
		t.Fatalf("seqs %d %d", alice.Seq, bob.Seq)
	}
	if _, err := st.CreateUser(ctx, membership.User{ID: "alice", Username: "alice2"}); !errors.Is(err, membership.ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := st.CreateUser(ctx, membership.User{ID: "carol", Username: "alice"}); !errors.Is(err, membership.ErrInvalid) {
		t.Fatalf("taken username: %v", err)
	}
	g := must[membership.Group](t)(st.CreateGroup(ctx, membership.Group{ID: "g1", Name: "Group one"}))
	if g.Type != membership.GroupPrivate || g.Seq == 0 {
		t.Fatalf("group defaults: %+v", g)
	}
	must[membership.Member](t)(st.PutMember(ctx, membership.Member{GroupID: "g1", UserID: "bob"}))
	must[membership.Member](t)(st.PutMember(ctx, membership.Member{GroupID: "g1", UserID: "alice", Role: membership.RoleOwner, Roles: []string{"leader"}}))
	if _, err := st.PutMember(ctx, membership.Member{GroupID: "g1", UserID: "nobody"}); !errors.Is(err, membership.ErrNotFound) {
		t.Fatalf("member of unknown user: %v", err)
	}

	ms := ix.Members("g1")
	if len(ms) != 2 || ms[0].UserID != "bob" || ms[1].UserID != "alice" {
		t.Fatalf("members in join order: %+v", ms)
	}
	if got := ix.UsersInRole("admin"); len(got) != 1 || got[0].ID != "alice" {
		t.Fatalf("admins: %+v", got)
	}
	if got := ix.MembersInRole("leader", ""); len(got) != 1 || got[0].UserID != "alice" {
		t.Fatalf("leaders: %+v", got)
	}
	if got := ix.MembersInRole("owner", "g1"); len(got) != 1 || got[0].UserID != "alice" {
		t.Fatalf("owners: %+v", got)
	}
	if u, ok := ix.UserBySeq(bob.Seq); !ok || u.ID != "bob" {
		t.Fatalf("by seq: %+v", u)
	}
	if gg, ok := ix.GroupBySeq(g.Seq); !ok || gg.ID != "g1" {
		t.Fatalf("group by seq: %+v", gg)
	}

	upd := must[membership.User](t)(st.UpdateUser(ctx, "bob", func(u *membership.User) error { u.Name = "Bob"; return nil }))
	if upd.Name != "Bob" || upd.Seq != bob.Seq {
		t.Fatalf("update: %+v", upd)
	}
	if err := st.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if ix.IsMember("g1", "bob") {
		t.Fatal("membership survived user deletion")
	}
	if err := st.DeleteGroup(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if len(ix.GroupsOf("alice")) != 0 {
		t.Fatal("membership survived group deletion")
	}
	mu.Lock()
	defer mu.Unlock()
	want := "user:false user:false group:false member:false member:false user:false member:true user:true member:true group:true"
	if got := strings.Join(feed, " "); got != want {
		t.Fatalf("change feed\n got %s\nwant %s", got, want)
	}
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, natstest.Start(t))
	cases := []struct {
		name  string
		u     membership.User
		field string
	}{
		{"empty id", membership.User{Username: "x"}, "id"},
		{"dot in id", membership.User{ID: "a.b", Username: "x"}, "id"},
		{"long id", membership.User{ID: strings.Repeat("a", 65), Username: "x"}, "id"},
		{"space in username", membership.User{ID: "a", Username: "a b"}, "username"},
		{"bad avatar", membership.User{ID: "a", Username: "a", AvatarURL: "javascript:alert(1)"}, "avatarUrl"},
		{"offset", membership.User{ID: "a", Username: "a", UTCOffset: 20}, "utcOffset"},
		{"type", membership.User{ID: "a", Username: "a", Type: "robot"}, "type"},
		{"unknown role", membership.User{ID: "a", Username: "a", Roles: []string{"nope"}}, "roles"},
		{"group role as global", membership.User{ID: "a", Username: "a", Roles: []string{"owner"}}, "roles"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := st.CreateUser(ctx, c.u)
			var ve *membership.ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field {
				t.Fatalf("got %v, want a validation error on %s", err, c.field)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	st := openStore(t, natstest.Start(t))
	// Authenticate takes a token of an active user only.
	must[membership.User](t)(st.CreateUser(ctx, membership.User{ID: "u1", Username: "u1", Active: true}))
	secret, tok, err := st.CreateToken(ctx, membership.TokenSpec{Name: "t", UserID: "u1", Scopes: []string{membership.ScopeConnect}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, membership.TokenPrefix) || strings.Contains(tok.Hash, secret) {
		t.Fatalf("secret %q hash %q", secret, tok.Hash)
	}
	got, err := st.Authenticate(ctx, secret)
	if err != nil || got.ID != tok.ID || got.UserID != "u1" {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	if _, err := st.Authenticate(ctx, secret+"x"); !errors.Is(err, membership.ErrUnauthorized) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, _, err := st.CreateToken(ctx, membership.TokenSpec{Scopes: []string{"root"}}); !errors.Is(err, membership.ErrInvalid) {
		t.Fatalf("bad scope: %v", err)
	}
	soon := now.Add(time.Hour)
	s2, _, err := st.CreateToken(ctx, membership.TokenSpec{Scopes: []string{membership.ScopeAdmin}, ExpiresAt: &soon, Secret: "operator-chosen-secret"})
	if err != nil || s2 != "operator-chosen-secret" {
		t.Fatalf("operator secret: %q %v", s2, err)
	}
	if _, err := st.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, secret); !errors.Is(err, membership.ErrUnauthorized) {
		t.Fatalf("revoked token still works: %v", err)
	}
}

func TestTokenExpiry(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := natstest.Start(t)
	js, _ := jetstream.New(natstest.Connect(t, s))
	st, err := membership.Open(ctx, membership.Config{JetStream: js, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exp := now.Add(time.Minute)
	secret, _, err := st.CreateToken(ctx, membership.TokenSpec{Scopes: []string{membership.ScopeAdmin}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := st.Authenticate(ctx, secret); !errors.Is(err, membership.ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, natstest.Start(t))
	in := strings.Join([]string{
		`{"kind":"role","id":"sales","name":"Sales","scope":"Users"}`,
		`{"kind":"user","id":"u1","username":"one","roles":["sales"]}`,
		`{"kind":"user","id":"u2","username":"two","type":"bot"}`,
		`{"kind":"group","id":"g1","name":"G"}`,
		`{"kind":"member","groupId":"g1","userId":"u1","role":"owner"}`,
		`{"kind":"member","groupId":"g1","userId":"u2"}`,
		``,
		`{"kind":"member","groupId":"g1","userId":"ghost"}`,
		`{"kind":"user","id":"u3","username":"three","colour":"red"}`,
		`not json`,
		`{"kind":"planet"}`,
	}, "\n")
	rep, err := st.Import(ctx, strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != 10 || rep.Created != 6 || rep.Failed != 4 || rep.Unchanged != 0 {
		t.Fatalf("first import: %+v", rep)
	}
	for i, line := range []int{8, 9, 10, 11} {
		if rep.Errors[i].Line != line {
			t.Fatalf("error lines: %+v", rep.Errors)
		}
	}
	if ms := st.Index().Members("g1"); len(ms) != 2 || ms[0].Seq == 0 || ms[0].Seq == ms[1].Seq {
		t.Fatalf("members: %+v", ms)
	}
	rep, err = st.Import(ctx, strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created != 0 || rep.Updated != 0 || rep.Unchanged != 6 || rep.Failed != 4 {
		t.Fatalf("second import is not idempotent: %+v", rep)
	}
	rep, err = st.Import(ctx, strings.NewReader(`{"kind":"user","id":"u2","username":"two","name":"Two","type":"bot"}`), nil)
	if err != nil || rep.Updated != 1 {
		t.Fatalf("update by import: %+v %v", rep, err)
	}
	if u, _ := st.Index().User("u2"); u.Name != "Two" || u.Type != membership.UserTypeBot {
		t.Fatalf("u2: %+v", u)
	}
}

// TestRestart writes, closes everything and opens a new server on the same
// storage directory: every acknowledged write is there.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	func() {
		s := natstest.StartWith(t, natstest.Options{StoreDir: dir})
		st := openStore(t, s)
		must[membership.User](t)(st.CreateUser(ctx, membership.User{ID: "u1", Username: "one"}))
		must[membership.Group](t)(st.CreateGroup(ctx, membership.Group{ID: "g1", Name: "G"}))
		must[membership.Member](t)(st.PutMember(ctx, membership.Member{GroupID: "g1", UserID: "u1"}))
		st.Close()
		s.Shutdown()
		s.WaitForShutdown()
	}()
	st := openStore(t, natstest.StartWith(t, natstest.Options{StoreDir: dir}))
	if !st.Index().IsMember("g1", "u1") {
		t.Fatal("membership lost across restart")
	}
	u := must[membership.User](t)(st.CreateUser(ctx, membership.User{ID: "u2", Username: "two"}))
	if u.Seq != 2 {
		t.Fatalf("seq after restart = %d, want 2", u.Seq)
	}
}
