package webhook

import (
	"time"

	"github.com/presenced/presenced/presence"
)

// queued is a change waiting for its batch, with the time it arrived.
type queued struct {
	change presence.Change
	at     time.Time
}

// queue is a FIFO of changes bounded by limit: a push past it drops the
// oldest. Its ring grows on demand, so an idle endpoint holds little
// memory. Not safe for concurrent use.
type queue struct {
	buf   []queued
	head  int
	n     int
	limit int
}

func newQueue(limit int) *queue { return &queue{limit: limit} }

func (q *queue) len() int { return q.n }

// push appends c and reports whether the oldest change was dropped to make
// room for it.
func (q *queue) push(c presence.Change, at time.Time) (dropped bool) {
	if q.n == q.limit {
		q.buf[q.head] = queued{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		dropped = true
	}
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = queued{c, at}
	q.n++
	return dropped
}

func (q *queue) grow() {
	size := min(max(2*len(q.buf), 16), q.limit)
	buf := make([]queued, size)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = buf, 0
}

// oldest returns the arrival time of the first change; the queue must not
// be empty.
func (q *queue) oldest() time.Time { return q.buf[q.head].at }

// pop removes and returns the first min(n, len) changes.
func (q *queue) pop(n int) []presence.Change {
	n = min(n, q.n)
	out := make([]presence.Change, n)
	for i := range n {
		j := (q.head + i) % len(q.buf)
		out[i] = q.buf[j].change
		q.buf[j] = queued{}
	}
	if n > 0 {
		q.head = (q.head + n) % len(q.buf)
		q.n -= n
	}
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > 1024 {
			q.buf = nil // let a burst's ring go
		}
	}
	return out
}

// clear empties the queue and returns how many changes it held.
func (q *queue) clear() int {
	n := q.n
	*q = queue{limit: q.limit}
	return n
}
