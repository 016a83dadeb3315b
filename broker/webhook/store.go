package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/internal/jskv"
	"go.uber.org/zap"
)

// DefaultBucket is the KV bucket of the registrations.
const DefaultBucket = "presenced_webhooks"

// DefaultMaxWebhooks bounds the number of registrations.
const DefaultMaxWebhooks = 100

// StoreConfig configures a Store. The zero value of every field but
// JetStream is a usable default.
type StoreConfig struct {
	// JetStream is the connection to the JetStream domain holding the bucket.
	JetStream jetstream.JetStream
	// Bucket is the KV bucket name (default DefaultBucket), file storage.
	Bucket string
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// MaxWebhooks bounds the registrations Create accepts (default
	// DefaultMaxWebhooks). Creations racing on several nodes may pass it by
	// a few.
	MaxWebhooks int
	// AllowPrivate accepts targets on loopback, private and other
	// non-public addresses; without it Create and Update resolve a
	// target's host and refuse it when any of its addresses is one.
	AllowPrivate bool
	// Resolver resolves target hosts (default net.DefaultResolver).
	Resolver Resolver
	// Logger receives decode problems (default: no logging).
	Logger *zap.Logger
	// Now stamps CreatedAt and EnabledAt (default time.Now).
	Now func() time.Time
}

// Store owns the webhooks bucket. It watches the bucket so that every node
// knows every webhook; every write returns only after JetStream stored it
// and the local view applied it, so a caller reads its own writes.
type Store struct {
	cfg StoreConfig
	kv  jetstream.KeyValue
	// pub sends the writes: each is sent again while the bucket's stream
	// has no leader to answer it (see jskv.PublishAll).
	pub jetstream.JetStream
	log *zap.Logger

	// follow applies the bucket's entries to the view, resuming its watch
	// when the stream's leader is lost.
	follow *jskv.Follower

	mu sync.Mutex
	// mu guards the following fields.
	hooks   map[string]Webhook
	subs    map[int]func(w Webhook, deleted bool)
	nextSub int

	turns jskv.Turns // this store's updates of a webhook take turns
}

// Open creates or binds the bucket, loads it and keeps the view current
// until Close.
func Open(ctx context.Context, cfg StoreConfig) (*Store, error) {
	if cfg.JetStream == nil {
		return nil, fmt.Errorf("%w: store config: JetStream is required", ErrInvalid)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxWebhooks <= 0 {
		cfg.MaxWebhooks = DefaultMaxWebhooks
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	kv, err := jskv.CreateBucket(ctx, cfg.JetStream, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "presenced webhooks: registered endpoints and their secrets",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: open bucket %s: %w", cfg.Bucket, err)
	}
	pub, err := jskv.Publisher(cfg.JetStream)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	s := &Store{
		cfg:   cfg,
		kv:    kv,
		pub:   pub,
		log:   cfg.Logger.Named("webhook"),
		hooks: map[string]Webhook{},
		subs:  map[int]func(Webhook, bool){},
	}
	st, err := jskv.Stream(ctx, cfg.JetStream, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("webhook: open bucket %s: %w", cfg.Bucket, err)
	}
	s.follow, err = jskv.Follow(ctx, kv, st, jskv.FollowConfig{Apply: s.apply, Logger: s.log, JetStream: cfg.JetStream})
	if err != nil {
		return nil, fmt.Errorf("webhook: watch %s: %w", cfg.Bucket, err)
	}
	select {
	case <-s.follow.Loaded():
		return s, nil
	case <-s.follow.Done():
		return nil, fmt.Errorf("webhook: watch %s stopped while loading", cfg.Bucket)
	case <-ctx.Done():
		s.follow.Stop()
		return nil, ctx.Err()
	}
}

// Close stops the watch. Reads keep answering from the last state.
func (s *Store) Close() { s.follow.Stop() }

// KV returns the bucket, for health checks.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Revision returns the last bucket revision the view applied.
func (s *Store) Revision() uint64 { return s.follow.Rev() }

// checkURL normalizes raw and, unless private targets are allowed,
// refuses a target that is or resolves to a non-public address.
func (s *Store) checkURL(ctx context.Context, raw string) (string, error) {
	u, err := validateURL(raw)
	if err != nil || s.cfg.AllowPrivate {
		return u, err
	}
	return u, checkTarget(ctx, u, s.cfg.Resolver)
}

// Get returns the webhook with id, or ErrNotFound.
func (s *Store) Get(id string) (Webhook, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.hooks[id]
	if !ok {
		return Webhook{}, fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	}
	return clone(w), nil
}

// List returns every webhook, ordered by id.
func (s *Store) List() []Webhook {
	s.mu.Lock()
	out := make([]Webhook, 0, len(s.hooks))
	for _, w := range s.hooks {
		out = append(out, clone(w))
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Webhook) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Watch calls fn with every webhook known now and then, in bucket order,
// with every later change (deleted reports a removal; w then carries only
// the ID). fn runs with the store's lock held or on its watch goroutine:
// it must return quickly and must not call the Store. The returned
// function unregisters fn.
func (s *Store) Watch(fn func(w Webhook, deleted bool)) (cancel func()) {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	for _, w := range s.hooks {
		fn(clone(w), false)
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

// Create validates w and stores it under a new ID, with a generated secret
// when w.Secret is empty and CreatedAt set to now. It returns the stored
// webhook, secret included.
func (s *Store) Create(ctx context.Context, w Webhook) (Webhook, error) {
	var err error
	if w.URL, err = s.checkURL(ctx, w.URL); err != nil {
		return Webhook{}, err
	}
	if w.Secret == "" {
		w.Secret = NewSecret()
	} else if err := validateSecret(w.Secret); err != nil {
		return Webhook{}, err
	}
	if w.Users, err = normalizeUsers(w.Users); err != nil {
		return Webhook{}, err
	}
	s.mu.Lock()
	n := len(s.hooks)
	s.mu.Unlock()
	if n >= s.cfg.MaxWebhooks {
		return Webhook{}, fmt.Errorf("%w (limit %d)", ErrLimit, s.cfg.MaxWebhooks)
	}
	w.ID = newID()
	// Not truncated: the consumer starts at this instant, and a change made
	// just before it is not the webhook's.
	w.CreatedAt = s.cfg.Now().UTC()
	w.EnabledAt = time.Time{}
	b, err := json.Marshal(w)
	if err != nil {
		return Webhook{}, fmt.Errorf("webhook: encode: %w", err)
	}
	rev, err := jskv.Write(ctx, s.pub, s.kv, w.ID, b, new(uint64))
	if err != nil {
		return Webhook{}, fmt.Errorf("webhook: create %s: %w", w.ID, err)
	}
	w.Revision = rev
	return w, s.waitApplied(ctx, rev)
}

// Update applies fn to the stored webhook id and stores the result with a
// compare-and-set, trying again on a concurrent write (see
// jskv.Turns.Contend). fn may change URL, Users and Disabled; ID, Secret
// and CreatedAt are kept, and EnabledAt is set to now when Disabled turns
// false.
func (s *Store) Update(ctx context.Context, id string, fn func(w *Webhook) error) (Webhook, error) {
	if !ValidID(id) {
		return Webhook{}, fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	}
	var w Webhook
	err := s.turns.Contend(ctx, id, ErrConflict, func(ctx context.Context, _ bool) error {
		e, err := s.read(ctx, id)
		if err != nil {
			return err
		}
		var old Webhook
		if err := json.Unmarshal(e.Value(), &old); err != nil {
			return fmt.Errorf("webhook: decode %s: %w", id, err)
		}
		w = clone(old)
		if err := fn(&w); err != nil {
			return err
		}
		w.ID, w.Secret, w.CreatedAt, w.EnabledAt = old.ID, old.Secret, old.CreatedAt, old.EnabledAt
		if old.Disabled && !w.Disabled {
			w.EnabledAt = s.cfg.Now().UTC()
		}
		if w.URL != old.URL {
			if w.URL, err = s.checkURL(ctx, w.URL); err != nil {
				return err
			}
		}
		if w.Users, err = normalizeUsers(w.Users); err != nil {
			return err
		}
		b, err := json.Marshal(w)
		if err != nil {
			return fmt.Errorf("webhook: encode: %w", err)
		}
		expect := e.Revision()
		rev, err := jskv.Write(ctx, s.pub, s.kv, id, b, &expect)
		if jskv.WrongSequence(err) {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("webhook: update %s: %w", id, err)
		}
		w.Revision = rev
		return nil
	})
	if err != nil {
		return Webhook{}, err
	}
	return w, s.waitApplied(ctx, w.Revision)
}

// read reads the registration a compare-and-set rests on from the leader
// of the bucket's stream: kv.Get is a direct get, which a replica that has
// not applied the last write may answer, with an old revision or none. It
// asks again while the stream has no leader; a webhook that does not exist
// is ErrNotFound.
func (s *Store) read(ctx context.Context, id string) (jetstream.KeyValueEntry, error) {
	e, err := jskv.GetFromLeaderRetried(ctx, s.cfg.JetStream, s.kv, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("webhook: read %s: %w", id, err)
	}
	return e, nil
}

// Delete removes the webhook id, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	}
	var seq uint64
	err := s.turns.Contend(ctx, id, ErrConflict, func(ctx context.Context, _ bool) error {
		e, err := s.read(ctx, id)
		if err != nil {
			return err
		}
		// The delete marker is published by hand to learn its revision,
		// with the read revision expected: a concurrent delete then
		// answers not found once, when it reads again. A refusal is no
		// proof that the webhook is gone: it was updated meanwhile, or a
		// write of it is still in process at a new leader ("wrong last
		// sequence", 10164, until the leader applied it).
		msg := nats.NewMsg("$KV." + s.cfg.Bucket + "." + id)
		msg.Header.Set("KV-Operation", "DEL")
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(e.Revision(), 10))
		ack, err := jskv.Send(ctx, s.pub, msg)
		if jskv.WrongSequence(err) {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("webhook: delete %s: %w", id, err)
		}
		seq = ack.Sequence
		return nil
	})
	if err != nil {
		return err
	}
	return s.waitApplied(ctx, seq)
}

// apply applies one entry of the bucket to the view (nil: the end of the
// initial load).
func (s *Store) apply(e jetstream.KeyValueEntry) {
	if e == nil {
		return
	}
	id := e.Key()
	deleted := e.Operation() != jetstream.KeyValuePut
	var w Webhook
	ok := ValidID(id)
	if ok && !deleted {
		if err := json.Unmarshal(e.Value(), &w); err != nil || w.ID != id {
			s.log.Warn("skipping undecodable webhook", zap.String("key", id), zap.Error(err))
			ok = false
		}
	}
	w.Revision = e.Revision()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		if deleted {
			delete(s.hooks, id)
			w = Webhook{ID: id, Revision: e.Revision()}
		} else {
			s.hooks[id] = w
		}
		for _, fn := range s.subs {
			fn(clone(w), deleted)
		}
	}
}

// waitApplied blocks until the view has applied revision rev.
func (s *Store) waitApplied(ctx context.Context, rev uint64) error {
	err := s.follow.Wait(ctx, rev)
	if errors.Is(err, jskv.ErrStopped) {
		return fmt.Errorf("webhook: %w: watch stopped", ErrClosed)
	}
	return err
}

func clone(w Webhook) Webhook {
	w.Users = slices.Clone(w.Users)
	return w
}
