package history

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
)

// usersPage is how many users one look-up of the server's count reads.
const usersPage = 1000

// Service samples the online counts of one node into the shared buckets
// and answers queries from its copy of them.
type Service struct {
	cfg          Config
	log          *zap.Logger
	names        *names
	fine, coarse series

	written, lost, failed, skipped atomic.Uint64

	// kvFine and kvCoarse are set by Start before the sampler runs, and
	// only read after.
	kvFine, kvCoarse jetstream.KeyValue

	mu sync.Mutex
	// mu guards the following fields.
	follows         []*jskv.Follower
	stop            context.CancelFunc // ends the sampler
	done            chan struct{}      // closed when the sampler has returned
	started, closed bool
}

// Stats counts what this node's sampler did since Start.
type Stats struct {
	// Written counts the samples of this node that landed, Lost those that
	// another node's sample of the same period beat, Failed those the
	// store did not take, Skipped the periods this node did not sample
	// because it was cut off from the store.
	Written, Lost, Failed, Skipped uint64
}

// New checks cfg and returns a Service to Start.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: cfg.Logger.Named("history"), names: newNames()}, nil
}

// Start opens the buckets, loads the samples they hold and starts the
// sampler. A Service starts once.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return fmt.Errorf("%w: Start called twice or after Shutdown", ErrClosed)
	}
	s.started = true
	s.mu.Unlock()

	var follows []*jskv.Follower
	fail := func(err error) error {
		for _, f := range follows {
			f.Stop()
		}
		return err
	}
	margin := s.cfg.Coarse
	kvFine, f, err := s.follow(ctx, "_fine", "fine samples", s.cfg.KeepFine+margin, &s.fine)
	if err != nil {
		return fail(err)
	}
	follows = append(follows, f)
	kvCoarse, f, err := s.follow(ctx, "_coarse", "coarse samples", s.cfg.KeepCoarse+margin, &s.coarse)
	if err != nil {
		return fail(err)
	}
	follows = append(follows, f)
	for _, f := range follows {
		select {
		case <-f.Loaded():
		case <-ctx.Done():
			return fail(fmt.Errorf("history: loading the samples: %w", ctx.Err()))
		}
	}
	s.trim()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fail(fmt.Errorf("%w: shut down while starting", ErrClosed))
	}
	s.kvFine, s.kvCoarse, s.follows = kvFine, kvCoarse, follows
	run, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	go s.run(run, s.done)
	return nil
}

// follow opens one bucket and follows it into sr.
func (s *Service) follow(ctx context.Context, suffix, what string, ttl time.Duration, sr *series) (jetstream.KeyValue, *jskv.Follower, error) {
	name := s.cfg.Bucket + suffix
	kv, err := jskv.CreateBucket(ctx, s.cfg.JetStream, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "presenced online history: " + what,
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("history: open bucket %s: %w", name, err)
	}
	st, err := jskv.Stream(ctx, s.cfg.JetStream, "KV_"+name)
	if err != nil {
		return nil, nil, fmt.Errorf("history: open bucket %s: %w", name, err)
	}
	f, err := jskv.Follow(ctx, kv, st, jskv.FollowConfig{
		Apply:     func(e jetstream.KeyValueEntry) { s.apply(sr, e) },
		Logger:    s.log,
		JetStream: s.cfg.JetStream,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("history: watch bucket %s: %w", name, err)
	}
	return kv, f, nil
}

// apply takes one entry of a bucket into its series.
func (s *Service) apply(sr *series, e jetstream.KeyValueEntry) {
	if e == nil || e.Operation() != jetstream.KeyValuePut {
		return
	}
	t, ok := parseKey(e.Key())
	if !ok {
		return
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		s.log.Warn("history: a sample that is not one", zap.String("bucket", e.Bucket()), zap.String("key", e.Key()), zap.Error(err))
		return
	}
	sr.put(s.names.sampleOf(t, r))
}

// Shutdown stops the sampler (a sample being written is given up) and the
// buckets' watches. Queries answer ErrClosed from then on.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	stop, done, follows := s.stop, s.done, s.follows
	s.follows = nil
	s.mu.Unlock()
	var err error
	if stop != nil {
		stop()
		// The sampler returns as soon as its store call sees the
		// cancellation; waiting for it keeps every goroutine owned.
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			<-done
		}
	}
	for _, f := range follows {
		f.Stop()
	}
	return err
}

// Stats returns the sampler's counters.
func (s *Service) Stats() Stats {
	return Stats{Written: s.written.Load(), Lost: s.lost.Load(), Failed: s.failed.Load(), Skipped: s.skipped.Load()}
}

// run samples at every period boundary until ctx ends. Each node waits a
// little after the boundary, at random, so that the first to sample is
// usually seen by the others before they count.
func (s *Service) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	p := s.cfg.Period.Milliseconds()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.cfg.Now().UnixMilli()
		next := (now/p + 1) * p
		jitter := rand.N(min(s.cfg.Period/10, 500*time.Millisecond) + 1)
		timer.Reset(time.Duration(next-now)*time.Millisecond + jitter)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.sampleAt(ctx, next)
		s.trim()
	}
}

// trim forgets the samples the buckets no longer keep.
func (s *Service) trim() {
	now := s.cfg.Now()
	margin := s.cfg.Coarse
	s.fine.trim(now.Add(-s.cfg.KeepFine - margin).UnixMilli())
	s.coarse.trim(now.Add(-s.cfg.KeepCoarse - margin).UnixMilli())
}

// sampleAt takes the samples of the period boundary t (Unix ms): the fine
// one, and the coarse one when t also ends a coarse period.
func (s *Service) sampleAt(ctx context.Context, t int64) {
	if err := s.cfg.Engine.Available(); err != nil {
		s.skipped.Add(1)
		s.log.Debug("history: not sampling: presence is unavailable on this node", zap.Error(err))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.Period, 5*time.Second))
	defer cancel()
	now, counted := sample{}, false
	if !s.fine.has(t) {
		now, counted = s.count(t), true
		s.claim(ctx, s.kvFine, &s.fine, now)
	}
	c := s.cfg.Coarse.Milliseconds()
	if t%c != 0 || s.coarse.has(t) {
		return
	}
	// The highest fine sample of the coarse period, this one included
	// (as counted here when the store has not shown another node's yet).
	peak, ok := s.fine.maxOver(t-c, t)
	switch {
	case counted && ok:
		peak = maxOf(peak, now)
	case counted:
		peak = now
	case !ok:
		return
	}
	peak.t = t
	s.claim(ctx, s.kvCoarse, &s.coarse, peak)
}

// claim writes x as its period's sample unless another node's is there:
// a KV Create succeeds for the first writer of a key only.
func (s *Service) claim(ctx context.Context, kv jetstream.KeyValue, sr *series, x sample) {
	body, err := json.Marshal(s.names.recordOf(x, s.cfg.Node))
	if err != nil {
		s.failed.Add(1)
		s.log.Error("history: encode a sample", zap.Error(err))
		return
	}
	_, err = kv.Create(ctx, key(x.t), body)
	switch {
	case err == nil:
		s.written.Add(1)
		sr.put(x) // the watch brings it too; no need to wait for it
	case errors.Is(err, jetstream.ErrKeyExists):
		s.lost.Add(1)
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		// Shutting down.
	default:
		s.failed.Add(1)
		s.log.Warn("history: a sample was not stored", zap.String("bucket", kv.Bucket()), zap.Int64("t", x.t), zap.Error(err))
	}
}

// count takes the current counts: distinct users online in the server,
// and the online members of every group with any.
func (s *Service) count(t int64) sample {
	x := sample{t: t}
	counts := s.cfg.Engine.Counts()
	busy := make([]groupCount, 0, len(counts))
	byID := make(map[uint32]string, len(counts))
	for _, c := range counts {
		if c.Online > 0 {
			id := s.names.id(c.Group)
			busy = append(busy, groupCount{id, int32(c.Online)})
			byID[id] = c.Group
		}
	}
	if len(busy) > s.cfg.MaxGroups {
		slices.SortFunc(busy, func(a, b groupCount) int {
			return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(byID[a.id], byID[b.id]))
		})
		busy, x.partial = busy[:s.cfg.MaxGroups], true
	}
	slices.SortFunc(busy, func(a, b groupCount) int { return cmp.Compare(a.id, b.id) })
	x.groups = busy

	ids := make([]string, 0, usersPage)
	after := ""
	for {
		page := s.cfg.Users.ListUsers(after, usersPage)
		if len(page) == 0 {
			break
		}
		ids = ids[:0]
		for _, u := range page {
			ids = append(ids, u.ID)
		}
		for _, st := range s.cfg.Engine.Statuses(ids) {
			if st.Status.Online() {
				x.online++
			}
		}
		after = ids[len(ids)-1]
		if len(page) < usersPage {
			break
		}
	}
	return x
}
