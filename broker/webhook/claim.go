package webhook

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// pinHeader carries the pin id on every message the server delivers to
// the pinned client of a priority group.
const pinHeader = "Nats-Pin-Id"

// onMsg takes a message the consumer delivered. The first one under a new
// pin means this node now delivers the webhook; a gap in the consumer
// sequence means a delivery went astray (to a fetch given up): either way
// the consumer is reset to its acknowledged floor, so that the changes
// come again in stream order, none skipped.
func (l *loop) onMsg(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		l.log.Debug("webhook: message without metadata", zap.Error(err))
		return
	}
	if pin := m.Headers().Get(pinHeader); pin != l.pin || pin == "" {
		l.claim(pin, meta)
		return
	}
	if meta.Sequence.Consumer != l.nextDseq || meta.Sequence.Stream <= l.lastSeq {
		// A delivery went to a fetch given up, or the server delivers
		// again what this node took: start over from the floor.
		l.log.Debug("webhook: deliveries out of sequence, rewinding",
			zap.Uint64("want", l.nextDseq), zap.Uint64("got", meta.Sequence.Consumer),
			zap.Uint64("stream", meta.Sequence.Stream), zap.Uint64("last", l.lastSeq))
		l.rewind(l.cut)
		return
	}
	l.nextDseq++
	l.take(taken{m, meta})
}

// claim starts delivering under pin. The previous deliverer (another node,
// or this one before a restart) may have left a batch unacknowledged,
// maybe delivered but not acknowledged: it is delivered again first, as
// the same batch, so that it keeps its id. Its end is found from the
// message that revealed the pin: a first delivery comes after everything
// delivered before it, a redelivery belongs to what was delivered.
func (l *loop) claim(pin string, first *jetstream.MsgMetadata) {
	if pin == "" {
		// A consumer without the pinned policy: created by a version of
		// this package that did not pin, or by hand.
		l.log.Error("webhook: consumer is not pinned; not delivering", zap.String("consumer", l.w.id))
		l.abandon()
		l.pauseFor(l.cfg.FailoverAfter)
		return
	}
	l.stopFetch()
	ctx, cancel := context.WithTimeout(l.ctx, opTimeout)
	defer cancel()
	info, err := l.cons.Info(ctx)
	if err != nil {
		l.lost("cannot read the consumer after being pinned", err)
		return
	}
	cut := info.Delivered.Stream
	if first.NumDelivered == 1 {
		cut = first.Sequence.Stream - 1
	}
	if cut <= info.AckFloor.Stream {
		cut = 0
	}
	l.abandon()
	l.pin = pin
	if !l.rewind(cut) {
		return
	}
	l.w.count(func(st *EndpointStats) { st.Delivering = true })
	l.log.Info("webhook: this node delivers the webhook", zap.Uint64("from", l.lastSeq+1), zap.Uint64("redeliverTo", cut))
}

// rewind resets the consumer to its acknowledged floor, dropping what this
// node took and did not deliver, and remembers cut, the end of a batch to
// deliver again as it was. It reports false, having given up the pin, when
// the reset failed.
func (l *loop) rewind(cut uint64) bool {
	l.stopFetch()
	l.dropHeld()
	ctx, cancel := context.WithTimeout(l.ctx, opTimeout)
	defer cancel()
	r, err := l.st.ResetConsumer(ctx, l.w.id)
	if err != nil {
		l.lost("cannot reset the consumer", err)
		return false
	}
	// The server delivers from ResetSeq again, numbering deliveries from 1.
	l.lastSeq, l.nextDseq, l.cut = r.ResetSeq-1, 1, cut
	return true
}

// lost gives up delivering after an error: another node, or this one
// later, claims the webhook again.
func (l *loop) lost(why string, err error) {
	if l.ctx.Err() == nil {
		l.log.Warn("webhook: "+why, zap.Error(err))
	}
	l.abandon()
	l.pauseFor(l.cfg.keepalive())
}

// onFetchEnd handles the end of a fetch: expired, complete, or failed.
func (l *loop) onFetchEnd() {
	err := l.fetch.Error()
	l.stopFetch()
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case errors.Is(err, jetstream.ErrPinIDMismatch):
		if l.pin != "" {
			l.log.Info("webhook: another node delivers the webhook now")
			l.abandon()
		}
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
		// Deleted by hand, or the webhook is being deleted: configure it
		// again unless the webhook is gone.
		l.abandon()
		l.hook.Revision = 0
		l.pauseFor(l.cfg.keepalive())
	default:
		l.log.Debug("webhook: fetch ended", zap.Error(err))
		l.pauseFor(l.cfg.keepalive())
	}
}
