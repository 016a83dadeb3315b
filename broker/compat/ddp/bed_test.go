package ddp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/broker/compat/ddp"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// bed is one node without the broker: an embedded JetStream, a real
// membership store and presence engine, and a Handler served on loopback.
type bed struct {
	t       testing.TB
	store   *membership.Store
	engine  *presence.Engine
	handler *ddp.Handler
	srv     *httptest.Server
	url     string // ws://127.0.0.1:port
	clock   atomic.Int64
	down    atomic.Pointer[error] // what Config.Available reports
	tokens  map[string]string     // user → a connect token
}

// The seeded world: alice and bob share the group team; carol is in no
// group; dave is inactive. Visibility is shared-groups.
const (
	alice = "alice"
	bob   = "bob"
	carol = "carol"
	dave  = "dave"
)

func newBed(t testing.TB, mods ...func(*ddp.Config)) *bed {
	t.Helper()
	b := &bed{t: t, tokens: map[string]string{}}
	b.clock.Store(time.Now().UnixNano())
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := zaptest.NewLogger(t)
	b.store, err = membership.Open(ctx, membership.Config{JetStream: js, Logger: log,
		Now: func() time.Time { return time.Unix(0, b.clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.store.Close)
	b.engine, err = presence.New(presence.Config{
		JetStream: js, Conn: nc, NodeID: "n1", Storage: jetstream.MemoryStorage,
		Grace: 100 * time.Millisecond, Logger: log.Named("presence"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.engine.Shutdown(ctx)
	})
	for _, u := range []membership.User{
		{ID: alice, Username: "alice", Name: "Alice", Active: true, Roles: []string{"user"}},
		{ID: bob, Username: "bob", Name: "Bob", Active: true, Roles: []string{"user", "bot"}},
		{ID: carol, Username: "carol", Name: "Carol", Active: true},
		{ID: dave, Username: "dave", Active: true},
	} {
		if _, err := b.store.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		b.tokens[u.ID] = b.token(membership.TokenSpec{Name: "app", UserID: u.ID, Scopes: []string{membership.ScopeConnect}})
	}
	if _, err := b.store.PutGroup(ctx, membership.Group{ID: "team", Name: "Team", Type: membership.GroupPrivate}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{alice, bob} {
		if _, err := b.store.PutMember(ctx, membership.Member{GroupID: "team", UserID: u, Role: membership.RoleMember}); err != nil {
			t.Fatal(err)
		}
	}
	authority, err := membership.NewAuthority(b.store.Index(), membership.VisibilitySharedGroups)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ddp.Config{
		Auth:       b.authenticate,
		Presence:   b.engine,
		Users:      b.store.Index(),
		Visibility: authority,
		Available: func() error {
			if err := b.down.Load(); err != nil {
				return *err
			}
			return nil
		},
		IdleTimeout: time.Minute,
		Logger:      log.Named("ddp"),
	}
	for _, m := range mods {
		m(&cfg)
	}
	b.handler, err = ddp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.handler.Start(); err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(b.handler)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.handler.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		b.srv.Close()
	})
	b.url = "ws" + b.srv.URL[len("http"):]
	return b
}

// authenticate is what the broker's authenticator does for API tokens:
// the token, and for a user's token an active user.
func (b *bed) authenticate(ctx context.Context, token string) (membership.Credential, error) {
	tok, err := b.store.Authenticate(ctx, token)
	if err != nil {
		return membership.Credential{}, err
	}
	if tok.UserID != "" {
		if u, ok := b.store.Index().User(tok.UserID); !ok || !u.Active {
			return membership.Credential{}, fmt.Errorf("%w: user inactive", membership.ErrUnauthorized)
		}
	}
	c := membership.Credential{UserID: tok.UserID, TokenID: tok.ID, Scopes: tok.Scopes}
	if tok.ExpiresAt != nil {
		c.Expires = *tok.ExpiresAt
	}
	return c, nil
}

func (b *bed) token(spec membership.TokenSpec) string {
	b.t.Helper()
	secret, _, err := b.store.CreateToken(context.Background(), spec)
	if err != nil {
		b.t.Fatal(err)
	}
	return secret
}

// status waits until the engine shows user with status st.
func (b *bed) status(user string, st protocol.Status) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.engine.Status(user).Status != st {
		if time.Now().After(deadline) {
			b.t.Fatalf("%s is %s, want %s", user, b.engine.Status(user).Status, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setDown makes Config.Available report err (nil: available).
func (b *bed) setDown(err error) {
	if err == nil {
		b.down.Store(nil)
		return
	}
	b.down.Store(&err)
}

var errDown = errors.New("cut off from the store")
