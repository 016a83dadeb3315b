package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/presenced/presenced/presence"
)

// Service runs the webhooks of one node: the registrations (Store), the
// REST API (Routes), and the delivery of the change feed to every enabled
// webhook.
//
// Lock order: Store.mu, then Service.mu, then endpoint.mu.
type Service struct {
	cfg       Config
	log       *zap.Logger
	client    *http.Client
	ownClient bool

	// flush is closed by Shutdown: endpoints send what they hold without
	// waiting for their batch window, then stop.
	flush chan struct{}
	// ctx is the parent of every endpoint goroutine; cancel aborts them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	received    atomic.Uint64 // changes taken from the feed
	undecodable atomic.Uint64 // feed messages that were not a Change

	mu sync.RWMutex
	// mu guards the following fields.
	store     *Store
	stopWatch func()
	feed      *nats.Subscription
	statusSub *nats.Subscription
	endpoints map[string]*endpoint
	retired   EndpointStats // counters of the endpoints deleted so far
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
		cfg:       cfg,
		log:       cfg.Logger.Named("webhook"),
		client:    cfg.Client,
		flush:     make(chan struct{}),
		endpoints: map[string]*endpoint{},
	}
	if s.client == nil {
		s.client, s.ownClient = newClient(cfg.Timeout), true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start opens the store, starts delivering to every enabled webhook and
// subscribes to the change feed. When it returns, the feed subscription is
// registered with the server. A Service starts once.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closing {
		s.mu.Unlock()
		return fmt.Errorf("%w: Start called twice or after Shutdown", ErrClosed)
	}
	s.started = true
	s.mu.Unlock()

	st, err := Open(ctx, StoreConfig{
		JetStream:   s.cfg.JetStream,
		Bucket:      s.cfg.Bucket,
		Replicas:    s.cfg.Replicas,
		MaxWebhooks: s.cfg.MaxWebhooks,
		Logger:      s.cfg.Logger,
	})
	if err != nil {
		return err
	}
	stopWatch := st.Watch(s.onWebhook)
	feed, err := s.cfg.Conn.QueueSubscribe(s.cfg.Subject, s.cfg.QueueGroup, s.onChange)
	if err != nil {
		stopWatch()
		st.Close()
		return fmt.Errorf("webhook: subscribe %s: %w", s.cfg.Subject, err)
	}
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
		_ = feed.Unsubscribe()
		if statusSub != nil {
			_ = statusSub.Unsubscribe()
		}
		stopWatch()
		st.Close()
		return fmt.Errorf("webhook: subscribe: %w", err)
	}
	s.mu.Lock()
	s.store, s.stopWatch, s.feed, s.statusSub = st, stopWatch, feed, statusSub
	s.mu.Unlock()
	return nil
}

// Store returns the registrations, or nil before Start.
func (s *Service) Store() *Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.store
}

// Shutdown stops taking changes, sends what every endpoint holds (retrying
// as usual) until that is done or ctx is, then aborts what is left,
// counting it as dropped, and closes the store. Every goroutine of the
// Service has exited when it returns. It returns ctx's error if it gave up.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	st, stopWatch, feed, statusSub := s.store, s.stopWatch, s.feed, s.statusSub
	s.mu.Unlock()

	if stopWatch != nil {
		stopWatch()
	}
	if feed != nil {
		s.drain(ctx, feed)
	}
	if statusSub != nil {
		_ = statusSub.Unsubscribe()
	}
	close(s.flush)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("webhook: shutdown gave up on undelivered changes: %w", ctx.Err())
	}
	s.cancel()
	<-done
	s.mu.Lock()
	for _, e := range s.endpoints {
		e.stop() // counts what an aborted flush left
	}
	s.mu.Unlock()
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	if st != nil {
		st.Close()
	}
	return err
}

// drain lets the feed callback handle what the client already received,
// bounded by ctx.
func (s *Service) drain(ctx context.Context, sub *nats.Subscription) {
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		_ = sub.Unsubscribe()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		_ = sub.Unsubscribe()
	}
}

// onWebhook follows the store: it runs under the store's lock.
func (s *Service) onWebhook(w Webhook, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	e := s.endpoints[w.ID]
	if deleted {
		if e != nil {
			e.stop()
			// A goroutine still finishing adds to e.stats after this; what
			// it adds is lost to the totals, not double-counted.
			st := e.snapshot()
			st.Queued, st.InFlight = 0, 0
			s.retired.add(st)
			delete(s.endpoints, w.ID)
		}
		return
	}
	if e == nil {
		e = newEndpoint(s, w.ID)
		s.endpoints[w.ID] = e
	}
	e.update(w)
	if w.Disabled {
		e.stop()
	} else {
		e.start(s.ctx, &s.wg)
	}
}

// onChange is the feed callback. It only decodes and queues: a slow or
// failing endpoint never holds it up.
func (s *Service) onChange(m *nats.Msg) {
	var c presence.Change
	if err := json.Unmarshal(m.Data, &c); err != nil || c.User == "" {
		s.undecodable.Add(1)
		s.log.Debug("webhook: skipping a feed message that is not a change", zap.String("subject", m.Subject), zap.Error(err))
		return
	}
	s.received.Add(1)
	now := s.cfg.Clock.Now()
	s.mu.RLock()
	for _, e := range s.endpoints {
		e.accept(c, now)
	}
	s.mu.RUnlock()
}

// Stats are the node's totals over every webhook.
type Stats struct {
	// Webhooks counts the registrations this node knows.
	Webhooks int
	// Received counts the changes this node took from the feed (its share
	// of the queue group); Undecodable the feed messages it skipped.
	Received, Undecodable uint64
	// The rest sum EndpointStats over the webhooks, deleted ones included
	// (but for Queued and InFlight).
	EndpointStats
}

// Stats returns the node's totals.
func (s *Service) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Webhooks: len(s.endpoints), Received: s.received.Load(), Undecodable: s.undecodable.Load()}
	st.add(s.retired)
	for _, e := range s.endpoints {
		st.add(e.snapshot())
	}
	return st
}

// EndpointStats returns this node's counters of the webhook id.
func (s *Service) EndpointStats(id string) (EndpointStats, bool) {
	s.mu.RLock()
	e, ok := s.endpoints[id]
	s.mu.RUnlock()
	if !ok {
		return EndpointStats{}, false
	}
	return e.snapshot(), true
}
