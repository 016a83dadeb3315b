// Package compattest is the test bed of the compatibility handlers: a real
// membership store in an embedded JetStream with a fixed clock, a status
// table standing in for the presence engine, an authenticator over the
// store's tokens, and golden files.
package compattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// Now is the fixed time of every Env: the instant of the Bitrix24 page's
// example (its time.start), in the +02:00 zone its date_start shows.
var Now = time.Unix(1773850553, 0).In(time.FixedZone("EET", 2*3600))

// Env is one test's membership store and statuses.
type Env struct {
	clock    atomic.Int64 // the store's time, Unix nanoseconds
	Store    *membership.Store
	Index    *membership.Index
	Statuses *Statuses
	Auth     *Auth
	// Everyone is the visibility of upstream Rocket.Chat: every user sees
	// everyone (membership.VisibilityAll).
	Everyone *membership.Authority
}

// New starts JetStream, opens a store whose clock is Now and returns the
// Env; everything stops in t.Cleanup.
func New(t testing.TB) *Env {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := &Env{Statuses: NewStatuses()}
	e.clock.Store(Now.UnixNano())
	st, err := membership.Open(ctx, membership.Config{
		JetStream: js, Logger: zaptest.NewLogger(t),
		Now: func() time.Time { return time.Unix(0, e.clock.Load()).In(Now.Location()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	e.Store, e.Index, e.Auth = st, st.Index(), &Auth{Store: st}
	if e.Everyone, err = membership.NewAuthority(st.Index(), membership.VisibilityAll); err != nil {
		t.Fatal(err)
	}
	return e
}

// Advance moves the store's clock (token expiry, UpdatedAt) forward by d.
func (e *Env) Advance(d time.Duration) { e.clock.Add(int64(d)) }

// User stores u.
func (e *Env) User(t testing.TB, u membership.User) membership.User {
	t.Helper()
	u, err := e.Store.PutUser(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Group stores g.
func (e *Env) Group(t testing.TB, g membership.Group) membership.Group {
	t.Helper()
	g, err := e.Store.PutGroup(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Member stores m.
func (e *Env) Member(t testing.TB, m membership.Member) membership.Member {
	t.Helper()
	m, err := e.Store.PutMember(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Token issues a token and returns its secret.
func (e *Env) Token(t testing.TB, spec membership.TokenSpec) string {
	t.Helper()
	secret, _, err := e.Store.CreateToken(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// Auth authenticates against the store's API tokens: a user credential is
// a token acting as that user.
type Auth struct {
	Store *membership.Store
}

// AuthenticateUser accepts a token whose UserID is userID.
func (a *Auth) AuthenticateUser(ctx context.Context, userID, credential string) (membership.User, error) {
	tok, err := a.Store.Authenticate(ctx, credential)
	if err != nil {
		return membership.User{}, err
	}
	if tok.UserID == "" || tok.UserID != userID {
		return membership.User{}, fmt.Errorf("token of another user: %w", membership.ErrUnauthorized)
	}
	u, ok := a.Store.Index().User(userID)
	if !ok {
		return membership.User{}, fmt.Errorf("user %s: %w", userID, membership.ErrUnauthorized)
	}
	return u, nil
}

// AuthenticateToken resolves an API token.
func (a *Auth) AuthenticateToken(ctx context.Context, token string) (membership.Token, error) {
	return a.Store.Authenticate(ctx, token)
}

// FailingAuth fails every call with Err, for server-failure paths.
type FailingAuth struct{ Err error }

// AuthenticateUser fails.
func (f FailingAuth) AuthenticateUser(context.Context, string, string) (membership.User, error) {
	return membership.User{}, f.Err
}

// AuthenticateToken fails.
func (f FailingAuth) AuthenticateToken(context.Context, string) (membership.Token, error) {
	return membership.Token{}, f.Err
}

// ErrDown is a server-side failure for FailingAuth.
var ErrDown = errors.New("compattest: backend down")

// Statuses is a table of user statuses standing in for the presence engine.
type Statuses struct {
	mu sync.Mutex
	// mu guards the following fields.
	m      map[string]status
	writes []Write
}

type status struct {
	st      protocol.Status
	text    string
	changed time.Time
}

// Write is one SetManualStatus call.
type Write struct {
	User   string
	Status protocol.Status
	Text   string
}

// NewStatuses returns an empty table: everybody offline.
func NewStatuses() *Statuses { return &Statuses{m: map[string]status{}} }

// Set records a status that changed at changed.
func (s *Statuses) Set(user string, st protocol.Status, text string, changed time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[user] = status{st, text, changed}
}

// UserStatus implements the handlers' StatusReader.
func (s *Statuses) UserStatus(user string) (protocol.Status, string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[user]
	if !ok {
		return protocol.StatusOffline, "", time.Time{}
	}
	return e.st, e.text, e.changed
}

// ChangedSince implements the handlers' StatusReader.
func (s *Statuses) ChangedSince(t time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, e := range s.m {
		if !e.changed.Before(t) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// SetManualStatus implements rocketchat.StatusWriter: an empty status keeps
// the status and sets the text.
func (s *Statuses) SetManualStatus(_ context.Context, user string, st protocol.Status, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, Write{user, st, text})
	e, ok := s.m[user]
	if !ok {
		e.st = protocol.StatusOffline
	}
	if st != "" {
		e.st = st
	}
	e.text = text
	e.changed = Now
	s.m[user] = e
	return nil
}

// Writes returns the SetManualStatus calls so far.
func (s *Statuses) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}
