package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
)

// Config configures a Store. The zero value of every field but JetStream is
// a usable default.
type Config struct {
	// JetStream is the connection to the JetStream domain holding the bucket.
	JetStream jetstream.JetStream
	// Bucket is the KV bucket name (default DefaultBucket).
	Bucket string
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// Logger receives load and decode problems (default: no logging).
	Logger *zap.Logger
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// WatchCheck is how often the watch of the bucket is checked for a
	// stall (default 1s; see jskv.Follower).
	WatchCheck time.Duration
	// GoneAfter is how long the bucket's stream must be missing before
	// Lost reports it (default 10s; see jskv.FollowConfig).
	GoneAfter time.Duration
}

// Store owns the membership bucket: every write goes through it and returns
// only after JetStream acknowledged it and the local Index applied it, so a
// caller reads its own writes.
type Store struct {
	cfg    Config
	kv     jetstream.KeyValue
	pub    jetstream.JetStream // the writes' (see jskv.Publisher)
	index  *Index
	log    *zap.Logger
	follow *jskv.Follower // applies the bucket to the index

	resumes atomic.Uint64

	mu sync.Mutex
	// mu guards the following fields.
	subs    map[int]func(Change)
	nextSub int
	loading bool // the initial load is being applied: no changes to tell

	turns jskv.Turns // this store's writers of a key take turns

	seqMu sync.Mutex
	seqs  map[string]*seqState // by kind; seqMu guards the map

	// bg runs the deletions of orphaned memberships (orphans.go) until
	// bgCtx ends at Close.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

// Open creates or binds the bucket, loads it into the index and keeps the
// index current until Close.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.JetStream == nil {
		return nil, fmt.Errorf("%w: config: JetStream is required", ErrInvalid)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kv, err := jskv.CreateBucket(ctx, cfg.JetStream, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "presenced membership: users, groups, members, roles, tokens",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("membership: open bucket %s: %w", cfg.Bucket, err)
	}
	pub, err := jskv.Publisher(cfg.JetStream)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	s := &Store{
		cfg:     cfg,
		kv:      kv,
		pub:     pub,
		index:   newIndex(),
		log:     cfg.Logger.Named("membership"),
		subs:    map[int]func(Change){},
		loading: true,
		seqs:    map[string]*seqState{},
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	st, err := jskv.Stream(ctx, cfg.JetStream, "KV_"+cfg.Bucket)
	if err != nil {
		s.bgCancel()
		return nil, fmt.Errorf("membership: open bucket %s: %w", cfg.Bucket, err)
	}
	s.follow, err = jskv.Follow(ctx, kv, st, jskv.FollowConfig{
		Apply: s.apply, History: true, Check: cfg.WatchCheck, GoneAfter: cfg.GoneAfter, Logger: s.log, JetStream: cfg.JetStream,
		OnResume: func(string) { s.resumes.Add(1) },
	})
	if err != nil {
		s.bgCancel()
		return nil, fmt.Errorf("membership: watch: %w", err)
	}
	select {
	case <-s.follow.Loaded():
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("membership: loading bucket %s: %w", cfg.Bucket, ctx.Err())
	}
	if err := s.ensureBuiltinRoles(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Index returns the in-memory view of the bucket.
func (s *Store) Index() *Index { return s.index }

// KV returns the bucket, for health checks.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Close stops the watch and the background work. Reads keep answering
// from the last state.
func (s *Store) Close() {
	s.bgCancel()
	s.follow.Stop()
	s.bg.Wait()
}

// Err reports why the index may not follow the bucket right now (its
// watch stalled and is being resumed), nil while all is well: readiness
// checks report it.
func (s *Store) Err() error {
	if err := s.Lost(); err != nil {
		return err
	}
	if s.follow.Lagging() {
		return fmt.Errorf("membership: the index is behind the bucket at revision %d; resuming its watch", s.follow.Rev())
	}
	return nil
}

// Lost reports a bucket whose stream no longer exists (deleted, or gone
// with the store of a NATS that came back empty): the index holds records
// the store does not, and this store cannot follow what takes their place.
// Nil while the stream is there. It stays so until the node starts again.
func (s *Store) Lost() error {
	if s.follow.Gone() {
		return fmt.Errorf("membership: the bucket %s no longer exists in the store: its records are lost there (restore them from an export); restart the node", s.cfg.Bucket)
	}
	return nil
}

// Resumes counts the watches of the bucket resumed because one stalled or
// ended (a watch's consumer lives on one server, which may die).
func (s *Store) Resumes() uint64 { return s.resumes.Load() }

// Subscribe registers fn to be called, in bucket order, with every change
// applied to the index after this call. fn runs on the store's watch
// goroutine: it must return quickly and must not write to the store. The
// returned function unregisters fn.
func (s *Store) Subscribe(fn func(Change)) (cancel func()) {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

// apply is the Follower's callback: it applies one entry of the bucket to
// the index and tells the subscribers; nil ends the initial load.
func (s *Store) apply(e jetstream.KeyValueEntry) {
	if e == nil {
		s.mu.Lock()
		s.loading = false
		s.mu.Unlock()
		s.dropOrphans(s.loadedOrphans())
		return
	}
	deleted := e.Operation() != jetstream.KeyValuePut
	c, changed, err := s.index.apply(e.Key(), e.Value(), e.Revision(), deleted)
	if err != nil {
		s.log.Warn("skipping undecodable record", zap.String("key", e.Key()), zap.Error(err))
	}
	if !changed {
		return
	}
	s.mu.Lock()
	loading := s.loading
	var subs []func(Change)
	if !loading {
		for _, fn := range s.subs {
			subs = append(subs, fn)
		}
	}
	s.mu.Unlock()
	if !loading {
		s.dropOrphans(s.orphansOf(c))
	}
	for _, fn := range subs {
		fn(c)
	}
}

// waitApplied blocks until the index has applied revision rev.
func (s *Store) waitApplied(ctx context.Context, rev uint64) error {
	if err := s.follow.Wait(ctx, rev); err != nil {
		return fmt.Errorf("membership: waiting for revision %d: %w", rev, err)
	}
	return nil
}

// put writes value under key, with CAS when lastRev is not nil (0 means the
// key must not exist), and waits until the index has it.
func (s *Store) put(ctx context.Context, key string, value any, lastRev *uint64) (uint64, error) {
	b, err := json.Marshal(value)
	if err != nil {
		return 0, fmt.Errorf("membership: encode %s: %w", key, err)
	}
	// Through jskv.Write: a write whose answer was lost with the stream's
	// leader is sent again, and stored once.
	rev, err := jskv.Write(ctx, s.pub, s.kv, key, b, lastRev)
	switch {
	case isWrongSequence(err) && lastRev != nil && *lastRev == 0: // a creation
		return 0, ErrExists
	case isWrongSequence(err):
		return 0, ErrConflict
	case err != nil:
		return 0, fmt.Errorf("membership: write %s: %w", key, err)
	}
	return rev, s.waitApplied(ctx, rev)
}

// del deletes key and waits until the index has applied the deletion. It
// publishes the KV delete marker itself to learn its revision.
func (s *Store) del(ctx context.Context, key string) error {
	msg := nats.NewMsg("$KV." + s.cfg.Bucket + "." + key)
	msg.Header.Set("KV-Operation", "DEL")
	ack, err := jskv.Send(ctx, s.pub, msg)
	if err != nil {
		return fmt.Errorf("membership: delete %s: %w", key, err)
	}
	return s.waitApplied(ctx, ack.Sequence)
}

func isWrongSequence(err error) bool { return jskv.WrongSequence(err) }

// seqState is this store's view of one numeric alias sequence: the value
// and revision its last reservation left, so that the next one needs no
// read unless another node reserved since.
type seqState struct {
	known bool
	value int64
	rev   uint64
}

// reserveSeq reserves n consecutive numbers of a numeric alias sequence and
// returns the first. The key is read only after a try lost to another
// node, and then from the stream's leader: any replica answers a direct
// get, one that has not applied the last reservation with its old value.
func (s *Store) reserveSeq(ctx context.Context, kind string, n int64) (int64, error) {
	key := prefixSeq + kind
	var first int64
	err := s.contended(ctx, key, func(ctx context.Context, _ bool) error {
		s.seqMu.Lock()
		sq := s.seqs[kind] // the key's turn guards *sq
		if sq == nil {
			sq = &seqState{}
			s.seqs[kind] = sq
		}
		s.seqMu.Unlock()
		if !sq.known {
			e, err := jskv.GetFromLeaderRetried(ctx, s.cfg.JetStream, s.kv, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				sq.value, sq.rev = 0, 0
			case err != nil:
				return fmt.Errorf("membership: read %s: %w", key, err)
			default:
				if err := json.Unmarshal(e.Value(), &sq.value); err != nil {
					return fmt.Errorf("membership: decode %s: %w", key, err)
				}
				sq.rev = e.Revision()
			}
			sq.known = true
		}
		b, _ := json.Marshal(sq.value + n)
		rev, err := jskv.Write(ctx, s.pub, s.kv, key, b, &sq.rev) // 0: a creation
		switch {
		case err == nil:
			first = sq.value + 1
			sq.value, sq.rev = sq.value+n, rev
			return nil
		case errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err):
			sq.known = false
			return ErrConflict
		}
		sq.known = false
		return fmt.Errorf("membership: write %s: %w", key, err)
	})
	if err != nil {
		return 0, fmt.Errorf("sequence %s: %w", kind, err)
	}
	return first, nil
}

// ensureBuiltinRoles writes the built-in roles a start finds missing or
// changed, asking again while the bucket's stream does not answer (a
// cluster forming, a leader election): a start waits for it, within ctx.
func (s *Store) ensureBuiltinRoles(ctx context.Context) error {
	for _, r := range BuiltinRoles {
		if old, ok := s.index.Role(r.ID); ok && old == r {
			continue
		}
		if _, err := jskv.Retry(ctx, func(ctx context.Context) (uint64, error) {
			return s.put(ctx, roleKey(r.ID), r, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}
