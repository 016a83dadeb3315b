package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/presence"
)

// opTimeout bounds one JetStream request of a worker (consumer info,
// reset, acknowledgement).
const opTimeout = 5 * time.Second

// worker is one webhook on this node. Every node runs one per webhook, and
// each pulls from the webhook's consumer in its pinned-client priority
// group: the server hands the changes to one of them, the pinned one, until
// it stops asking for FailoverAfter. The worker keeps its registration's
// consumer configured, delivers while pinned, and deletes the consumer
// when the webhook is deleted.
type worker struct {
	svc  *Service
	id   string
	wake chan struct{} // capacity 1: a new version of the registration

	mu sync.Mutex
	// mu guards the following fields.
	hook    Webhook
	deleted bool
	stats   EndpointStats
	backlog int // changes in the consumer not taken yet, as last seen
	held    int // changes taken and waiting for their batch
}

func newWorker(s *Service, w Webhook) *worker {
	return &worker{svc: s, id: w.ID, wake: make(chan struct{}, 1), hook: w}
}

// update takes a new version of the registration, or its deletion.
func (w *worker) update(h Webhook, deleted bool) {
	w.mu.Lock()
	if deleted {
		w.deleted = true
	} else {
		w.hook = h
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) current() (Webhook, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hook, w.deleted
}

func (w *worker) snapshot() EndpointStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats
	if st.Delivering {
		st.Queued = w.backlog + w.held + st.InFlight
	}
	return st
}

// count changes the worker's counters under its lock.
func (w *worker) count(f func(st *EndpointStats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

// run delivers until ctx ends (at once, as if the node died) or stop is
// closed (after the attempt in flight, handing the webhook over).
func (w *worker) run(ctx context.Context, stop <-chan struct{}) {
	l := &loop{w: w, svc: w.svc, cfg: w.svc.cfg, ctx: ctx, st: w.svc.stream, log: w.svc.log.With(zap.String("webhook", w.id))}
	defer l.close()
	tick := time.NewTicker(l.cfg.keepalive())
	defer tick.Stop()
	for {
		hook, deleted := w.current()
		if deleted {
			l.abandon()
			dctx, cancel := context.WithTimeout(ctx, opTimeout)
			if err := deleteConsumer(dctx, l.st, w.id); err != nil {
				l.log.Warn("webhook: consumer of a deleted webhook left behind", zap.Error(err))
			}
			cancel()
			return
		}
		if l.cons == nil || hook.Revision != l.hook.Revision {
			l.reconfigure(hook)
		}
		if l.cons != nil && !l.hook.Disabled {
			l.pump()
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			if ctx.Err() == nil {
				l.handOver()
			}
			return
		case <-w.wake:
		case m, ok := <-l.fetchMsgs:
			if ok {
				l.onMsg(m)
			} else {
				l.onFetchEnd()
			}
		case <-tick.C:
			l.onTick()
		case <-l.windowC:
			l.windowC, l.windowDue = nil, true
			l.maybeSend()
		case <-l.retryC:
			l.retryC = nil
			l.startAttempt()
		case r := <-l.attDone:
			l.onResult(r)
		case <-l.pause:
			l.pause = nil
		}
	}
}

// loop is the state of a worker's goroutine; only that goroutine uses it.
type loop struct {
	w   *worker
	svc *Service
	cfg Config
	ctx context.Context
	st  jetstream.Stream
	log *zap.Logger

	hook Webhook            // the version the consumer was configured for
	cons jetstream.Consumer // nil until configured; it keeps the pin id

	// While pinned: the pin id, the consumer sequence the next delivery
	// must have, the stream sequence of the last message taken, and the
	// last stream sequence of the previous deliverer's batch (0: none).
	pin      string
	nextDseq uint64
	lastSeq  uint64
	cut      uint64

	held      []taken       // taken, waiting for their batch
	windowC   chan struct{} // fires BatchWait after the first held change
	windowT   presence.Timer
	windowDue bool

	fetch     jetstream.MessageBatch
	fetchMsgs <-chan jetstream.Msg
	fetchStop context.CancelFunc
	keepalive bool // the outstanding fetch only renews the pin

	cur        *batch // the batch being delivered
	attempt    int    // attempts at cur so far
	curTicks   int    // ticks seen while cur was in flight
	attDone    chan attemptResult
	attStop    context.CancelFunc // of the attempt running; nil when none
	retryC     chan struct{}
	retryT     presence.Timer
	ackPending bool // cur was answered 2xx but is not acknowledged yet

	pause <-chan time.Time // after an error, before asking again
}

// taken is a message taken from the consumer with its metadata.
type taken struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
}

type attemptResult struct {
	hint time.Duration
	err  error
}

// reconfigure brings the consumer up to the registration h. The consumer
// handle of the first configuration is kept: it carries the pin.
func (l *loop) reconfigure(h Webhook) {
	ctx, cancel := context.WithTimeout(l.ctx, opTimeout)
	defer cancel()
	c, err := l.svc.ensureConsumer(ctx, l.st, h)
	if err != nil {
		if l.ctx.Err() == nil {
			l.log.Warn("webhook: cannot configure the consumer, retrying", zap.Error(err))
			l.pauseFor(l.cfg.keepalive())
		}
		return
	}
	if l.cons == nil {
		l.cons = c
	}
	l.hook = h
	if h.Disabled {
		l.abandon()
	}
}

// pump keeps a fetch outstanding: as a standby, one message at a time,
// which tells that this node was pinned; while pinned, the changes of the
// next batch. While a batch is delivered, the ticks send keepalive
// fetches instead.
func (l *loop) pump() {
	if l.fetch != nil || l.pause != nil || l.cur != nil {
		return
	}
	switch {
	case l.pin == "":
		l.startFetch(1, l.cfg.FailoverAfter, false)
	case !l.windowDue && len(l.held) < l.cfg.BatchSize:
		l.startFetch(l.cfg.BatchSize-len(l.held), l.cfg.keepalive(), false)
	}
}

// startFetch sends a pull request for up to n messages that expires
// after wait. A keepalive fetch asks for at most one byte: it renews the
// pin and the server delivers nothing to it.
func (l *loop) startFetch(n int, wait time.Duration, keepalive bool) {
	ctx, cancel := context.WithTimeout(l.ctx, wait)
	opts := []jetstream.FetchOpt{jetstream.FetchContext(ctx), jetstream.FetchPriorityGroup(priorityGroup)}
	if keepalive {
		opts = append(opts, jetstream.FetchMaxBytes(1))
	}
	b, err := l.cons.Fetch(n, opts...)
	if err != nil {
		cancel()
		l.log.Debug("webhook: fetch failed", zap.Error(err))
		l.pauseFor(l.cfg.keepalive())
		return
	}
	l.fetch, l.fetchMsgs, l.fetchStop, l.keepalive = b, b.Messages(), cancel, keepalive
}

// handBackFetched stops the outstanding fetch and hands back the changes
// it received that the loop did not read yet.
func (l *loop) handBackFetched() {
	msgs := l.fetchMsgs
	l.stopFetch()
	for msgs != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			_ = m.Nak()
		default:
			return
		}
	}
}

// stopFetch abandons the outstanding fetch. A message the server sent it
// meanwhile stays unacknowledged; the consumer sequence of the next one
// tells (see onMsg).
func (l *loop) stopFetch() {
	if l.fetchStop != nil {
		l.fetchStop()
	}
	l.fetch, l.fetchMsgs, l.fetchStop = nil, nil, nil
}

// pauseFor holds the next fetch back for d, at most a second: long enough
// not to spin on an error, short enough for a standby to be ready.
func (l *loop) pauseFor(d time.Duration) { l.pause = time.After(min(d, time.Second)) }

// onTick renews what the delivering node holds: the pin, with a keepalive
// fetch, and the ack wait of the changes taken, which would otherwise be
// delivered again after FailoverAfter. It also refreshes the backlog while
// a batch is retried, and retries an acknowledgement that failed.
func (l *loop) onTick() {
	if l.pin == "" {
		return
	}
	if l.cur != nil && l.fetch == nil {
		l.startFetch(1, l.cfg.keepalive(), true)
	}
	if l.cur != nil {
		for _, m := range l.cur.msgs {
			_ = m.InProgress()
		}
	}
	for _, t := range l.held {
		_ = t.msg.InProgress()
	}
	if l.ackPending {
		if l.ack() {
			l.maybeSend()
		}
		return
	}
	if l.cur == nil {
		return
	}
	// A batch failing or slow: refresh the backlog, which no message
	// taken tells meanwhile.
	if l.curTicks++; l.attempt > 0 || l.curTicks > 1 {
		ctx, cancel := context.WithTimeout(l.ctx, opTimeout)
		if info, err := l.cons.Info(ctx); err == nil {
			l.w.mu.Lock()
			l.w.backlog = int(info.NumPending)
			l.w.mu.Unlock()
		}
		cancel()
	}
}

// abandon drops what this node holds without acknowledging it: the
// changes stay in the consumer for the next deliverer, handed back at
// once (a change held and not handed back would wait for its ack wait,
// and hold back the ones after it).
func (l *loop) abandon() {
	l.handBackFetched()
	l.abortAttempt()
	if l.cur != nil && !l.ackPending {
		for _, m := range l.cur.msgs {
			_ = m.Nak()
		}
	}
	for _, t := range l.held {
		_ = t.msg.Nak()
	}
	l.dropHeld()
	l.cur, l.ackPending, l.attempt = nil, false, 0
	l.pin, l.nextDseq, l.lastSeq, l.cut = "", 0, 0, 0
	l.w.mu.Lock()
	l.w.stats.Delivering, l.w.stats.InFlight, l.w.backlog, l.w.held = false, 0, 0, 0
	l.w.mu.Unlock()
}

func (l *loop) dropHeld() {
	l.held = nil
	l.windowDue = false
	if l.windowT != nil {
		l.windowT.Stop()
		l.windowT, l.windowC = nil, nil
	}
	l.w.mu.Lock()
	l.w.held = 0
	l.w.mu.Unlock()
}

// abortAttempt cancels the attempt running, if any, and waits for it. An
// attempt answered 2xx before it was canceled delivered its batch, which
// is then accounted for and acknowledged.
func (l *loop) abortAttempt() {
	if l.retryT != nil {
		l.retryT.Stop()
		l.retryT, l.retryC = nil, nil
	}
	if l.attStop == nil {
		return
	}
	l.attStop()
	r := <-l.attDone
	l.attStop = nil
	if r.err == nil && l.cur != nil {
		l.delivered()
	}
}

// handOver ends a graceful stop: it lets the attempt in flight finish
// (until ctx ends), acknowledges it if delivered, then gives up the pin and
// hands back what this node holds, so that another node carries on at once
// instead of after FailoverAfter.
func (l *loop) handOver() {
	l.handBackFetched()
	if l.attStop != nil {
		select {
		case r := <-l.attDone:
			l.attStop()
			l.attStop = nil
			if r.err == nil {
				l.delivered()
			}
		case <-l.ctx.Done():
			l.abortAttempt()
			return
		}
	}
	if l.pin == "" || l.cons == nil {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, opTimeout)
	defer cancel()
	if err := l.st.UnpinConsumer(ctx, l.w.id, priorityGroup); err != nil {
		l.log.Debug("webhook: unpin on shutdown failed", zap.Error(err))
		return
	}
	if l.cur != nil && !l.ackPending {
		for _, m := range l.cur.msgs {
			_ = m.Nak()
		}
	}
	for _, t := range l.held {
		_ = t.msg.Nak()
	}
}

func (l *loop) close() {
	l.stopFetch()
	l.abortAttempt()
	if l.windowT != nil {
		l.windowT.Stop()
	}
}
