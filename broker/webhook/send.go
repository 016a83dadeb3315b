package webhook

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// take adds a message to the next batch, which goes when it is full, when
// it reaches the end of the previous deliverer's batch, or BatchWait after
// its first message.
func (l *loop) take(t taken) {
	seq := t.meta.Sequence.Stream
	var dropped uint64
	if len(l.hook.Users) == 0 && l.lastSeq > 0 && seq > l.lastSeq+1 {
		// Every change is in an unfiltered consumer's view: a sequence
		// skipped is a change that left the stream undelivered.
		dropped = seq - l.lastSeq - 1
	}
	l.lastSeq = max(l.lastSeq, seq)
	l.held = append(l.held, t)
	l.w.mu.Lock()
	l.w.stats.Dropped += dropped
	l.w.backlog = int(t.meta.NumPending)
	l.w.held = len(l.held)
	l.w.mu.Unlock()
	l.svc.received.Add(1)
	if len(l.held) >= l.cfg.BatchSize || (l.cut > 0 && seq >= l.cut) {
		l.windowDue = true
	} else if len(l.held) == 1 {
		ch := make(chan struct{}, 1)
		l.windowC = ch
		l.windowT = l.cfg.Clock.AfterFunc(l.cfg.BatchWait, func() { ch <- struct{}{} })
	}
	l.maybeSend()
}

// maybeSend starts delivering the next batch when one is due and none is
// in flight.
func (l *loop) maybeSend() {
	if l.cur != nil || len(l.held) == 0 || !l.windowDue {
		return
	}
	// No more changes may come to this node while it delivers: what it
	// holds is then exactly the batch in flight, which the next deliverer
	// finds again whole. A change the server sent to the fetch given up
	// would be held by nobody and break that: start over from the floor.
	l.stopFetch()
	if !l.nothingAstray() {
		l.rewind(l.cut)
		return
	}
	n := min(len(l.held), l.cfg.BatchSize)
	if l.cut > 0 {
		n = 0
		for n < len(l.held) && l.held[n].meta.Sequence.Stream <= l.cut {
			n++
		}
		if n == 0 { // the end of that batch left the stream
			n = min(len(l.held), l.cfg.BatchSize)
		}
		l.cut = 0
	}
	ts := l.held[:n]
	l.held = append([]taken(nil), l.held[n:]...)
	if l.windowT != nil {
		l.windowT.Stop()
	}
	l.windowT, l.windowC, l.windowDue = nil, nil, false
	if len(l.held) > 0 {
		l.windowDue = true // what was left over is due as well
	}
	b, err := l.newBatch(ts)
	if err != nil { // cannot happen with these types
		l.log.Error("webhook: encode batch", zap.Error(err))
		return
	}
	l.cur, l.attempt, l.curTicks = b, 0, 0
	l.w.mu.Lock()
	l.w.held = len(l.held)
	l.w.stats.InFlight = b.changes
	l.w.mu.Unlock()
	if b.body == nil { // nothing for this endpoint: acknowledge only
		if l.delivered() {
			l.maybeSend()
		}
		return
	}
	l.startAttempt()
}

// nothingAstray reports whether every delivery of the consumer so far
// reached this node, and refreshes the backlog. When the consumer cannot
// be read it assumes so: the acknowledgement would fail as well.
func (l *loop) nothingAstray() bool {
	ctx, cancel := context.WithTimeout(l.ctx, opTimeout)
	defer cancel()
	info, err := l.cons.Info(ctx)
	if err != nil {
		return true
	}
	l.w.mu.Lock()
	l.w.backlog = int(info.NumPending)
	l.w.mu.Unlock()
	return info.Delivered.Consumer < l.nextDseq
}

// newBatch decodes the changes of ts for the endpoint: not the ones of
// users it does not want (the filter may have changed since they were
// taken), nor the ones from before it was enabled, nor what is not a
// change.
func (l *loop) newBatch(ts []taken) (*batch, error) {
	users := map[string]bool{}
	for _, u := range l.hook.Users {
		users[u] = true
	}
	since := l.hook.since()
	msgs := make([]jetstream.Msg, len(ts))
	seqs := make([]uint64, len(ts))
	var cs []presence.Change
	for i, t := range ts {
		msgs[i], seqs[i] = t.msg, t.meta.Sequence.Stream
		var c presence.Change
		if err := json.Unmarshal(t.msg.Data(), &c); err != nil || c.User == "" {
			l.svc.undecodable.Add(1)
			l.log.Debug("webhook: skipping a stream message that is not a change", zap.String("subject", t.msg.Subject()), zap.Error(err))
			continue
		}
		if (len(users) > 0 && !users[c.User]) || t.meta.Timestamp.Before(since) {
			continue
		}
		cs = append(cs, c)
	}
	return newBatch(l.w.id, msgs, seqs, cs)
}

// startAttempt POSTs the batch in flight on a goroutine of its own, so that
// the loop keeps renewing the pin meanwhile.
func (l *loop) startAttempt() {
	ctx, cancel := context.WithCancel(l.ctx)
	l.attStop = cancel
	if l.attDone == nil {
		l.attDone = make(chan attemptResult, 1)
	}
	url, secret, b, done := l.hook.URL, l.hook.Secret, l.cur, l.attDone
	go func() {
		hint, err := l.svc.post(ctx, url, secret, b)
		done <- attemptResult{hint, err}
	}()
}

// onResult acknowledges a delivered batch or schedules the next attempt.
func (l *loop) onResult(r attemptResult) {
	l.attStop()
	l.attStop = nil
	if r.err == nil {
		if l.attempt > 0 {
			l.log.Info("webhook: endpoint recovered", zap.String("batch", l.cur.id), zap.Int("attempts", l.attempt+1))
		}
		if l.delivered() {
			l.maybeSend()
		}
		return
	}
	now := l.cfg.Clock.Now()
	l.w.count(func(st *EndpointStats) {
		st.FailedAttempts++
		st.LastError, st.LastErrorAt = describe(r.err), now
	})
	wait := protocol.Backoff(l.attempt, l.cfg.MinBackoff, l.cfg.MaxBackoff, l.cfg.Rand())
	if r.hint > wait {
		wait = min(r.hint, l.cfg.MaxBackoff)
	}
	log := l.log.Debug
	if l.attempt == 0 {
		log = l.log.Warn
	}
	log("webhook: delivery failed, retrying", zap.String("batch", l.cur.id),
		zap.Int("attempt", l.attempt+1), zap.Duration("retryIn", wait), zap.String("error", describe(r.err)))
	l.attempt++
	ch := make(chan struct{}, 1)
	l.retryC = ch
	l.retryT = l.cfg.Clock.AfterFunc(wait, func() { ch <- struct{}{} })
}

// delivered accounts for the batch in flight, answered 2xx (or holding no
// change for this endpoint), and acknowledges it. It reports whether the
// acknowledgement went through.
func (l *loop) delivered() bool {
	now := l.cfg.Clock.Now()
	b := l.cur
	l.w.count(func(st *EndpointStats) {
		st.InFlight = 0
		if b.body != nil {
			st.Delivered += uint64(b.changes)
			st.Batches++
			st.LastDeliveredAt = now
		}
	})
	l.ackPending = true
	return l.ack()
}

// ack acknowledges the batch in flight, and with it every message before
// it, and reports whether that went through. On failure the ticks try
// again; meanwhile the node keeps the batch, and a node that takes over
// delivers it again under the same id.
func (l *loop) ack() bool {
	ctx, cancel := context.WithTimeout(l.ctx, opTimeout)
	defer cancel()
	if err := l.cur.last().DoubleAck(ctx); err != nil {
		if l.ctx.Err() == nil {
			l.log.Warn("webhook: acknowledging a delivered batch failed, retrying", zap.String("batch", l.cur.id), zap.Error(err))
		}
		return false
	}
	l.cur, l.ackPending, l.attempt = nil, false, 0
	if l.keepalive {
		l.stopFetch() // the next fetch takes changes again
	}
	return true
}
