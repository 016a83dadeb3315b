package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Service runs the webhooks of one node: the registrations (Store), the
// REST API (API), the change stream, and a worker per webhook that
// delivers it whenever the webhook's consumer pins this node.
//
// Lock order: Store.mu, then Service.mu, then worker.mu.
type Service struct {
	cfg       Config
	log       *zap.Logger
	client    *http.Client
	ownClient bool

	// stop is closed by Shutdown: workers finish the attempt in flight and
	// hand their webhook over.
	stop chan struct{}
	// ctx is the parent of every worker; cancel aborts them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	received    atomic.Uint64 // messages taken from the stream
	undecodable atomic.Uint64 // stream messages that were not a change

	// stream is set by Start before any worker runs.
	stream jetstream.Stream

	mu sync.RWMutex
	// mu guards the following fields.
	store     *Store
	stopWatch func()
	statusSub *nats.Subscription
	workers   map[string]*worker
	retired   EndpointStats // counters of the webhooks deleted so far
	started   bool
	closing   bool
}

// New validates cfg and returns a Service to Start.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:     cfg,
		log:     cfg.Logger.Named("webhook"),
		client:  cfg.Client,
		stop:    make(chan struct{}),
		workers: map[string]*worker{},
	}
	if s.client == nil {
		s.client, s.ownClient = newClient(cfg.Timeout, cfg.AllowPrivate), true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start opens the store and the change stream, removes the consumers of
// webhooks deleted while no node ran, and starts a worker per webhook.
// From its return every status change is kept for the webhooks. A Service
// starts once.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closing {
		s.mu.Unlock()
		return fmt.Errorf("%w: Start called twice or after Shutdown", ErrClosed)
	}
	s.started = true
	s.mu.Unlock()

	stream, err := openStream(ctx, s.cfg)
	if err != nil {
		return err
	}
	s.stream = stream
	st, err := Open(ctx, StoreConfig{
		JetStream:    s.cfg.JetStream,
		Bucket:       s.cfg.Bucket,
		Replicas:     s.cfg.Replicas,
		MaxWebhooks:  s.cfg.MaxWebhooks,
		AllowPrivate: s.cfg.AllowPrivate,
		Resolver:     s.cfg.Resolver,
		Logger:       s.cfg.Logger,
	})
	if err != nil {
		return err
	}
	s.sweepOrphans(ctx, st)
	statusSub, err := s.cfg.Conn.Subscribe(SubjectStatus, s.onStatusRequest)
	if err == nil {
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := ctx.Deadline(); !ok { // nats.go wants one
			fctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		}
		err = s.cfg.Conn.FlushWithContext(fctx)
		cancel()
	}
	if err != nil {
		if statusSub != nil {
			_ = statusSub.Unsubscribe()
		}
		st.Close()
		return fmt.Errorf("webhook: subscribe: %w", err)
	}
	s.mu.Lock()
	s.store, s.statusSub = st, statusSub
	s.mu.Unlock()
	stopWatch := st.Watch(s.onWebhook)
	s.mu.Lock()
	s.stopWatch = stopWatch
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.orphanLoop(st)
	}()
	return nil
}

// sweepOrphans deletes the consumers of deleted webhooks: those deleted
// while no node ran, and those a worker left behind because the change
// stream did not answer its deletion (an election).
func (s *Service) sweepOrphans(ctx context.Context, st *Store) {
	known := func(id string) bool { _, err := st.Get(id); return err == nil }
	if n, err := deleteOrphans(ctx, s.stream, known, st.Revision()); err != nil {
		s.log.Warn("webhook: cannot clean up consumers of deleted webhooks", zap.Error(err))
	} else if n > 0 {
		s.log.Info("webhook: deleted consumers of deleted webhooks", zap.Int("consumers", n))
	}
}

// orphanLoop runs sweepOrphans every OrphanSweep until the Service stops.
func (s *Service) orphanLoop(st *Store) {
	tick := time.NewTicker(s.cfg.OrphanSweep)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.ctx.Done():
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
			s.sweepOrphans(ctx, st)
			cancel()
		}
	}
}

// Store returns the registrations, or nil before Start.
func (s *Service) Store() *Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.store
}

// Shutdown stops the workers: each lets its attempt in flight finish,
// acknowledges it if it was delivered, and hands its webhook over to
// another node at once. What is not delivered stays in the stream. When
// ctx ends first the workers are aborted, as if the node died; the
// webhooks then move to another node after FailoverAfter. Every goroutine
// of the Service has exited when it returns. It returns ctx's error if it
// gave up.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	st, stopWatch, statusSub := s.store, s.stopWatch, s.statusSub
	s.mu.Unlock()

	if stopWatch != nil {
		stopWatch()
	}
	if statusSub != nil {
		_ = statusSub.Unsubscribe()
	}
	if ctx.Err() != nil {
		s.cancel() // no time to hand over: abort, as if the node died
	}
	close(s.stop)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("webhook: shutdown gave up on a delivery in flight: %w", ctx.Err())
	}
	s.cancel()
	<-done
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	if st != nil {
		st.Close()
	}
	return err
}

// onWebhook follows the store: it runs under the store's lock, so it only
// hands the new version to the webhook's worker.
func (s *Service) onWebhook(w Webhook, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	wk := s.workers[w.ID]
	if deleted {
		if wk != nil {
			// The worker deletes the consumer and exits. What it counts
			// on the way is lost to the totals, not double-counted.
			wk.update(w, true)
			st := wk.snapshot()
			st.Queued, st.InFlight, st.Delivering = 0, 0, false
			s.retired.add(st)
			delete(s.workers, w.ID)
		}
		return
	}
	if wk != nil {
		wk.update(w, false)
		return
	}
	wk = newWorker(s, w)
	s.workers[w.ID] = wk
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		wk.run(s.ctx, s.stop)
	}()
}

// Stats are the node's totals over every webhook.
type Stats struct {
	// Webhooks counts the registrations this node knows.
	Webhooks int
	// Received counts the messages this node took from the stream (for
	// the webhooks it delivered, deliveries again included); Undecodable
	// the ones that were not a change.
	Received, Undecodable uint64
	// The rest sum EndpointStats over the webhooks, deleted ones included
	// (but for Queued and InFlight).
	EndpointStats
}

// Stats returns the node's totals.
func (s *Service) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Webhooks: len(s.workers), Received: s.received.Load(), Undecodable: s.undecodable.Load()}
	st.add(s.retired)
	for _, w := range s.workers {
		st.add(w.snapshot())
	}
	return st
}

// EndpointStats returns this node's counters of the webhook id.
func (s *Service) EndpointStats(id string) (EndpointStats, bool) {
	s.mu.RLock()
	w, ok := s.workers[id]
	s.mu.RUnlock()
	if !ok {
		return EndpointStats{}, false
	}
	return w.snapshot(), true
}
