package webhook

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// EndpointStats are one webhook's delivery counters on one node. Counts
// are of changes unless named otherwise.
type EndpointStats struct {
	// Queued counts the changes not delivered yet: waiting, or in the batch
	// being delivered (InFlight).
	Queued   int `json:"queued"`
	InFlight int `json:"inFlight"`
	// Delivered counts changes in batches answered with a 2xx; Batches
	// counts those batches.
	Delivered uint64 `json:"delivered"`
	Batches   uint64 `json:"batches"`
	// FailedAttempts counts POSTs that failed (transport error, timeout or
	// a status other than 2xx).
	FailedAttempts uint64 `json:"failedAttempts"`
	// Dropped counts changes discarded: the oldest past QueueLimit, and
	// what was queued when the webhook was disabled or deleted or when
	// Shutdown gave up.
	Dropped         uint64    `json:"dropped"`
	LastError       string    `json:"lastError,omitempty"`
	LastErrorAt     time.Time `json:"lastErrorAt,omitzero"`
	LastDeliveredAt time.Time `json:"lastDeliveredAt,omitzero"`
}

// add sums o into st; the last error and times are the latest of both.
func (st *EndpointStats) add(o EndpointStats) {
	st.Queued += o.Queued
	st.InFlight += o.InFlight
	st.Delivered += o.Delivered
	st.Batches += o.Batches
	st.FailedAttempts += o.FailedAttempts
	st.Dropped += o.Dropped
	if o.LastErrorAt.After(st.LastErrorAt) {
		st.LastError, st.LastErrorAt = o.LastError, o.LastErrorAt
	}
	if o.LastDeliveredAt.After(st.LastDeliveredAt) {
		st.LastDeliveredAt = o.LastDeliveredAt
	}
}

// batch is one POST's worth of changes, numbered per endpoint and node.
type batch struct {
	seq     uint64
	changes []presence.Change
}

// payload is the JSON body of a delivery.
type payload struct {
	Webhook string            `json:"webhook"`
	Node    string            `json:"node"`
	Batch   uint64            `json:"batch"`
	Changes []presence.Change `json:"changes"`
}

// endpoint is one webhook on this node: a bounded queue filled by the feed
// callback and at most one goroutine that batches and delivers it, in
// order. A failing batch is retried until delivered and holds back the
// ones after it.
type endpoint struct {
	svc  *Service
	id   string
	wake chan struct{} // capacity 1: a change arrived

	mu sync.Mutex
	// mu guards the following fields.
	hook   Webhook
	users  map[string]bool // nil: every user
	q      *queue
	seq    uint64 // last batch number
	stats  EndpointStats
	cancel context.CancelFunc // of the running goroutine; nil when stopped
	done   chan struct{}      // closed when the last goroutine started exits
}

func newEndpoint(s *Service, id string) *endpoint {
	return &endpoint{svc: s, id: id, wake: make(chan struct{}, 1), q: newQueue(s.cfg.QueueLimit)}
}

// update takes a new version of the registration.
func (e *endpoint) update(w Webhook) {
	var users map[string]bool
	if len(w.Users) > 0 {
		users = make(map[string]bool, len(w.Users))
		for _, u := range w.Users {
			users[u] = true
		}
	}
	e.mu.Lock()
	e.hook, e.users = w, users
	e.mu.Unlock()
}

// start runs the delivery goroutine unless it runs. A goroutine started
// after a stop waits for the previous one to exit, so there is never more
// than one delivering.
func (e *endpoint) start(parent context.Context, wg *sync.WaitGroup) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	prev, done := e.done, make(chan struct{})
	e.cancel, e.done = cancel, done
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		if prev != nil {
			select {
			case <-prev:
			case <-ctx.Done():
				return
			}
		}
		e.run(ctx)
	}()
}

// stop cancels the goroutine, aborting a delivery in progress, and
// discards the queue.
func (e *endpoint) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
	e.stats.Dropped += uint64(e.q.clear())
}

// accept queues c if the endpoint runs and wants it. It never blocks on
// the delivery: it is called from the feed callback.
func (e *endpoint) accept(c presence.Change, now time.Time) {
	e.mu.Lock()
	if e.cancel == nil || (e.users != nil && !e.users[c.User]) {
		e.mu.Unlock()
		return
	}
	if e.q.push(c, now) {
		e.stats.Dropped++
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *endpoint) snapshot() EndpointStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.Queued = e.q.len() + st.InFlight
	return st
}

func (e *endpoint) run(ctx context.Context) {
	for {
		b, ok := e.next(ctx)
		if !ok {
			return
		}
		e.deliver(ctx, b)
	}
}

// next waits for the next batch: BatchSize changes, or fewer once the
// oldest has waited BatchWait or when the service flushes. It reports false
// when ctx is done or when flushing has emptied the queue.
func (e *endpoint) next(ctx context.Context) (batch, bool) {
	cfg := e.svc.cfg
	for {
		flushing := isClosed(e.svc.flush)
		now := cfg.Clock.Now()
		e.mu.Lock()
		n := e.q.len()
		if n >= cfg.BatchSize || (n > 0 && (flushing || !now.Before(e.q.oldest().Add(cfg.BatchWait)))) {
			cs := e.q.pop(cfg.BatchSize)
			e.seq++
			e.stats.InFlight = len(cs)
			b := batch{e.seq, cs}
			e.mu.Unlock()
			return b, true
		}
		wait := time.Duration(-1)
		if n > 0 {
			wait = e.q.oldest().Add(cfg.BatchWait).Sub(now)
		}
		e.mu.Unlock()
		if n == 0 && flushing {
			return batch{}, false
		}
		if !e.sleep(ctx, wait) {
			return batch{}, false
		}
	}
}

// sleep waits for d on the clock (forever when d < 0), a new change, or
// the flush. It reports false when ctx is done.
func (e *endpoint) sleep(ctx context.Context, d time.Duration) bool {
	var fired chan struct{}
	if d >= 0 {
		fired = make(chan struct{})
		t := e.svc.cfg.Clock.AfterFunc(d, func() { close(fired) })
		defer t.Stop()
	}
	select {
	case <-ctx.Done():
		return false
	case <-e.wake:
	case <-fired:
	case <-e.svc.flush:
	}
	return true
}

// deliver POSTs b until an attempt succeeds or ctx is done.
func (e *endpoint) deliver(ctx context.Context, b batch) {
	cfg := e.svc.cfg
	body, err := json.Marshal(payload{Webhook: e.id, Node: cfg.NodeID, Batch: b.seq, Changes: b.changes})
	if err != nil { // cannot happen with these types; never retry it
		e.svc.log.Error("webhook: encode batch", zap.String("webhook", e.id), zap.Error(err))
		e.finish(b, false)
		return
	}
	e.mu.Lock()
	sig := Sign(e.hook.Secret, body)
	e.mu.Unlock()
	for attempt := 0; ; attempt++ {
		e.mu.Lock()
		url := e.hook.URL
		e.mu.Unlock()
		hint, err := e.svc.post(ctx, url, e.id, b.seq, body, sig)
		if err == nil {
			if attempt > 0 {
				e.svc.log.Info("webhook: endpoint recovered", zap.String("webhook", e.id),
					zap.Uint64("batch", b.seq), zap.Int("attempts", attempt+1))
			}
			e.finish(b, true)
			return
		}
		if ctx.Err() != nil {
			e.finish(b, false)
			return
		}
		now := cfg.Clock.Now()
		e.mu.Lock()
		e.stats.FailedAttempts++
		e.stats.LastError, e.stats.LastErrorAt = describe(err), now
		e.mu.Unlock()
		wait := protocol.Backoff(attempt, cfg.MinBackoff, cfg.MaxBackoff, cfg.Rand())
		if hint > wait {
			wait = min(hint, cfg.MaxBackoff)
		}
		log := e.svc.log.Debug
		if attempt == 0 {
			log = e.svc.log.Warn
		}
		log("webhook: delivery failed, retrying", zap.String("webhook", e.id), zap.Uint64("batch", b.seq),
			zap.Int("attempt", attempt+1), zap.Duration("retryIn", wait), zap.String("error", describe(err)))
		if !e.sleepRetry(ctx, wait) {
			e.finish(b, false)
			return
		}
	}
}

// sleepRetry waits d on the clock; new changes do not end it.
func (e *endpoint) sleepRetry(ctx context.Context, d time.Duration) bool {
	fired := make(chan struct{})
	t := e.svc.cfg.Clock.AfterFunc(d, func() { close(fired) })
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-fired:
		return true
	}
}

// finish accounts for b, delivered or given up.
func (e *endpoint) finish(b batch, delivered bool) {
	now := e.svc.cfg.Clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.InFlight = 0
	if delivered {
		e.stats.Delivered += uint64(len(b.changes))
		e.stats.Batches++
		e.stats.LastDeliveredAt = now
	} else {
		e.stats.Dropped += uint64(len(b.changes))
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
