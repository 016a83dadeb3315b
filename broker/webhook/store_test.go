package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/natstest"
)

func jsOf(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func openStore(t *testing.T, srv *server.Server, cfg webhook.StoreConfig) *webhook.Store {
	t.Helper()
	cfg.JetStream = jsOf(t, natstest.Connect(t, srv))
	cfg.Logger = zaptest.NewLogger(t)
	if cfg.Resolver == nil {
		cfg.Resolver = publicResolver{}
	}
	st, err := webhook.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func TestStoreCRUD(t *testing.T) {
	srv := natstest.Start(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	st := openStore(t, srv, webhook.StoreConfig{Now: func() time.Time { return now }})
	ctx := t.Context()

	a, err := st.Create(ctx, webhook.Webhook{URL: "https://a.example/hook", Users: []string{"bob", "alice", "bob"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !webhook.ValidID(a.ID) || len(a.Secret) < webhook.MinSecretLen || !a.CreatedAt.Equal(now) {
		t.Fatalf("created %+v: want a generated id and secret, CreatedAt %v", a, now)
	}
	if !slices.Equal(a.Users, []string{"bob", "alice"}) {
		t.Fatalf("users = %v, want duplicates dropped in order", a.Users)
	}
	b, err := st.Create(ctx, webhook.Webhook{URL: "http://b.example/", Secret: "given-secret-0123456789"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if b.Secret != "given-secret-0123456789" || a.ID == b.ID || a.Secret == b.Secret {
		t.Fatalf("second webhook %+v", b)
	}

	got, err := st.Get(a.ID)
	if err != nil || got.URL != a.URL || got.Secret != a.Secret {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, a)
	}
	list := st.List()
	if len(list) != 2 || list[0].ID > list[1].ID {
		t.Fatalf("List = %+v, want two ordered by id", list)
	}

	up, err := st.Update(ctx, a.ID, func(w *webhook.Webhook) error {
		w.URL, w.Disabled, w.Users = "https://a2.example/hook", true, nil
		w.Secret, w.ID = "attempt-to-change-secret", "wh_ffffffffffffffffffff" // kept
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if up.ID != a.ID || up.Secret != a.Secret || !up.Disabled || up.URL != "https://a2.example/hook" || up.Users != nil {
		t.Fatalf("Update = %+v", up)
	}
	if got, _ := st.Get(a.ID); !got.Disabled {
		t.Fatalf("Get after Update = %+v, want the update read back", got)
	}
	_, err = st.Update(ctx, a.ID, func(w *webhook.Webhook) error { w.URL = "gopher://x"; return nil })
	if !errors.Is(err, webhook.ErrInvalid) {
		t.Fatalf("Update to a bad URL: %v, want ErrInvalid", err)
	}

	if err := st.Delete(ctx, a.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Get(a.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	for _, id := range []string{a.ID, "wh_00000000000000000000", "nope", "a.b", ">"} {
		if err := st.Delete(ctx, id); !errors.Is(err, webhook.ErrNotFound) {
			t.Errorf("Delete(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := st.Update(ctx, id, func(*webhook.Webhook) error { return nil }); !errors.Is(err, webhook.ErrNotFound) {
			t.Errorf("Update(%q): %v, want ErrNotFound", id, err)
		}
	}
}

func TestStoreValidation(t *testing.T) {
	srv := natstest.Start(t)
	st := openStore(t, srv, webhook.StoreConfig{})
	long := make([]string, webhook.MaxUsersFilter+1)
	for i := range long {
		long[i] = "u"
	}
	tests := []struct {
		name  string
		w     webhook.Webhook
		field string
	}{
		{"no url", webhook.Webhook{}, "url"},
		{"bad scheme", webhook.Webhook{URL: "file:///etc/passwd"}, "url"},
		{"credentials", webhook.Webhook{URL: "https://u:p@x.example/"}, "url"},
		{"short secret", webhook.Webhook{URL: "https://x.example/", Secret: "short"}, "secret"},
		{"secret with space", webhook.Webhook{URL: "https://x.example/", Secret: "a secret with spaces"}, "secret"},
		{"bad user id", webhook.Webhook{URL: "https://x.example/", Users: []string{"ok", "not ok"}}, "users"},
		{"too many users", webhook.Webhook{URL: "https://x.example/", Users: long}, "users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.Create(t.Context(), tt.w)
			var ve *webhook.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field || !errors.Is(err, webhook.ErrInvalid) {
				t.Fatalf("Create: %v, want a ValidationError on %s", err, tt.field)
			}
		})
	}
	if n := len(st.List()); n != 0 {
		t.Fatalf("%d webhooks stored by invalid creations", n)
	}
}

func TestStoreLimit(t *testing.T) {
	srv := natstest.Start(t)
	st := openStore(t, srv, webhook.StoreConfig{MaxWebhooks: 2})
	for range 2 {
		if _, err := st.Create(t.Context(), webhook.Webhook{URL: "https://x.example/"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create(t.Context(), webhook.Webhook{URL: "https://x.example/"}); !errors.Is(err, webhook.ErrLimit) {
		t.Fatalf("third Create: %v, want ErrLimit", err)
	}
}

// event is one call of a Watch function.
type event struct {
	id      string
	url     string
	deleted bool
}

func TestStoreWatchSeesOtherNodes(t *testing.T) {
	srv := natstest.Start(t)
	a := openStore(t, srv, webhook.StoreConfig{})
	ctx := t.Context()
	first, err := a.Create(ctx, webhook.Webhook{URL: "https://first.example/"})
	if err != nil {
		t.Fatal(err)
	}

	b := openStore(t, srv, webhook.StoreConfig{}) // another node, started later
	var mu sync.Mutex
	var events []event
	changed := make(chan struct{}, 16)
	stop := b.Watch(func(w webhook.Webhook, deleted bool) {
		mu.Lock()
		events = append(events, event{w.ID, w.URL, deleted})
		mu.Unlock()
		changed <- struct{}{}
	})
	defer stop()
	waitEvents := func(n int) []event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			mu.Lock()
			got := slices.Clone(events)
			mu.Unlock()
			if len(got) >= n {
				return got
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("watch saw %v, want %d events", got, n)
			}
		}
	}
	if got := waitEvents(1); got[0] != (event{first.ID, first.URL, false}) {
		t.Fatalf("replay = %+v", got)
	}
	second, err := a.Create(ctx, webhook.Webhook{URL: "https://second.example/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	got := waitEvents(3)
	want := []event{{first.ID, first.URL, false}, {second.ID, second.URL, false}, {first.ID, "", true}}
	if !slices.Equal(got, want) {
		t.Fatalf("events = %+v, want %+v", got, want)
	}
	if _, err := b.Get(second.ID); err != nil {
		t.Fatalf("other node Get: %v", err)
	}
	// The other node can delete what this one created; the loser of a
	// race gets ErrNotFound.
	if err := b.Delete(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(context.WithoutCancel(ctx), second.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
}

// TestStoreWritesReadNoLaggingReplica gives the bucket's stream a mirror
// that serves direct gets and has none of the registrations, as a replica
// that lags has not: an update or delete that reads the registration
// there took it for gone, and answered "not found" for a webhook that
// exists.
func TestStoreWritesReadNoLaggingReplica(t *testing.T) {
	srv := natstest.Start(t)
	st := openStore(t, srv, webhook.StoreConfig{})
	ctx := t.Context()
	js := jsOf(t, natstest.Connect(t, srv))
	stream := "KV_" + webhook.DefaultBucket
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:         "lagging",
		Mirror:       &jetstream.StreamSource{Name: stream, FilterSubject: "$KV." + webhook.DefaultBucket + ".elsewhere"},
		MirrorDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	// A mirror serves direct gets once it has a message: a delete marker
	// of a key no registration has.
	m := nats.NewMsg("$KV." + webhook.DefaultBucket + ".elsewhere")
	m.Header.Set("KV-Operation", "DEL")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := js.Stream(ctx, "lagging")
		if err != nil {
			t.Fatal(err)
		}
		if info.CachedInfo().State.Msgs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mirror has no message after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 20 {
		w, err := st.Create(ctx, webhook.Webhook{URL: "https://a.example/hook"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Update(ctx, w.ID, func(w *webhook.Webhook) error { w.Disabled = true; return nil }); err != nil {
			t.Fatalf("update %d of a webhook that exists: %v", i, err)
		}
		if err := st.Delete(ctx, w.ID); err != nil {
			t.Fatalf("delete %d of a webhook that exists: %v", i, err)
		}
	}
}

// TestStoreUpdatesContend updates one webhook from two stores (two nodes)
// sixteen updates at a time on each: every update must succeed and none
// may be lost. Each is a compare-and-set; ten tries in a row, without a
// pause, lost to the others and answered an error.
func TestStoreUpdatesContend(t *testing.T) {
	srv := natstest.Start(t)
	a := openStore(t, srv, webhook.StoreConfig{})
	b := openStore(t, srv, webhook.StoreConfig{})
	ctx := t.Context()
	w, err := a.Create(ctx, webhook.Webhook{URL: "https://a.example/hook"})
	if err != nil {
		t.Fatal(err)
	}
	const perStore, workers = 64, 16
	type result struct {
		rev uint64
		err error
	}
	results := make(chan result, 2*perStore)
	for i, st := range []*webhook.Store{a, b} {
		for k := range workers {
			go func() {
				for j := range perStore / workers {
					user := fmt.Sprintf("u%d-%d-%d", i, k, j)
					got, err := st.Update(ctx, w.ID, func(w *webhook.Webhook) error {
						w.Users = append(w.Users, user)
						return nil
					})
					results <- result{got.Revision, err}
				}
			}()
		}
	}
	failed := 0
	var first error
	var last uint64
	for range 2 * perStore {
		r := <-results
		if r.err != nil {
			failed++
			if first == nil {
				first = r.err
			}
		}
		last = max(last, r.rev)
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent updates failed; the first: %v", failed, 2*perStore, first)
	}
	// The last update may have gone through b: a's view shows it once a
	// has applied its revision, not before.
	waitRevision(t, a, last)
	got, err := a.Get(w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Users) != 2*perStore {
		t.Fatalf("the webhook has %d of the %d users added", len(got.Users), 2*perStore)
	}
}

// waitRevision waits until st's view has applied revision rev.
func waitRevision(t *testing.T, st *webhook.Store, rev uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st.Revision() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("the view applied revision %d of %d after 10s", st.Revision(), rev)
		}
		time.Sleep(time.Millisecond)
	}
}
