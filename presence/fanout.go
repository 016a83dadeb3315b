package presence

import (
	"slices"
	"sync/atomic"
	"time"
)

// Fan-out: a change of one user touches only the groups that user is in.
// Coalescing is a throttle with a leading edge: a change that arrives while
// no window is open is delivered at once and opens a window; changes during
// the window are collected, and when it ends every dirty group builds one
// Batch (last change per user wins), and a new window opens only if there
// was something to deliver. A quiet system thus adds no latency, and a busy
// one delivers at most one batch per group per window;
// shared by all its subscribers, and one counts batch if its counts changed.
// Groups are flushed in revision order, so the batches a subscriber receives
// never go back in revision, across groups too.

// The window widens with the work: after a flush that queued n batches,
// the next window is max(coalesce, n/budget), so that the node hands its
// subscribers at most about budget batches per second however large its
// groups. A burst of joins to a group of 10,000 subscribers thus costs
// batches in proportion to its duration, not to its joins (each batch
// carrying every join of its window), while groups of up to budget×coalesce
// subscribers keep the coalesce window. A subscriber whose writes fall
// behind reads its queued batches of a group as one (Subscriber.Next), so
// its own window widens with its delay.

// fanout is the index's delivery state. It is guarded by index.mu.
type fanout struct {
	dirty       []*group
	armed       bool          // a flush timer is set
	timer       Timer         // the flush timer
	budget      int           // batches per second; <= 0: no budget
	window      time.Duration // of the open (or last) window
	closed      bool
	watchAll    []*Subscriber // count watchers of every group
	all         map[*Subscriber]struct{}
	dead        []*Subscriber // cut during the current flush
	subscribers int
	seen        map[string]struct{} // scratch for coalescing
	picks       []int               // scratch for coalescing
	stats       counters
}

type counters struct {
	events, deltas, batches, slow, changes atomic.Uint64
}

func (f *fanout) init() {
	f.all = make(map[*Subscriber]struct{})
	f.seen = make(map[string]struct{})
}

// markDirty queues g for the next flush if anyone listens to it.
func (x *index) markDirty(g *group) {
	if !x.loaded || g.dirty {
		return
	}
	if len(g.subs) == 0 && len(g.countSubs) == 0 && len(x.fan.watchAll) == 0 {
		g.pending = g.pending[:0]
		return
	}
	g.dirty = true
	x.fan.dirty = append(x.fan.dirty, g)
}

// afterApplyLocked runs once per applied entry: outside a coalescing
// window it flushes at once and opens one; inside, the flush waits for the
// window's end.
func (x *index) afterApplyLocked() {
	if len(x.fan.dirty) == 0 || x.fan.closed {
		return
	}
	if x.coalesce < 0 {
		x.flushLocked()
		return
	}
	if !x.fan.armed {
		x.armLocked(x.flushLocked())
	}
}

// armLocked opens a window after a flush that queued pushed batches.
func (x *index) armLocked(pushed uint64) {
	w := x.coalesce
	if b := x.fan.budget; b > 0 {
		w = max(w, time.Duration(pushed)*time.Second/time.Duration(b))
	}
	x.fan.armed, x.fan.window = true, w
	x.fan.timer = x.clock.AfterFunc(w, x.flushTimer)
}

// flushTimer ends a window: what it collected goes out, and a new window
// opens if there was any.
func (x *index) flushTimer() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.fan.armed = false
	if x.fan.closed || len(x.fan.dirty) == 0 {
		return
	}
	x.armLocked(x.flushLocked())
}

// flushLocked delivers every dirty group's batch and returns how many
// batches it queued.
func (x *index) flushLocked() uint64 {
	before := x.fan.stats.batches.Load()
	dirty := x.fan.dirty
	slices.SortStableFunc(dirty, func(a, b *group) int {
		switch {
		case a.rev < b.rev:
			return -1
		case a.rev > b.rev:
			return 1
		}
		return 0
	})
	for _, g := range dirty {
		g.dirty = false
		if len(g.subs) > 0 && (len(g.pending) > 0 || g.countsChanged) {
			b := Batch{Group: g.id, Rev: g.rev, Online: g.online, Total: len(g.members), Changes: x.coalesced(g.pending)}
			for _, s := range g.subs {
				x.push(s, b)
			}
		}
		if g.countsChanged {
			b := Batch{Group: g.id, Rev: g.rev, Online: g.online, Total: len(g.members), CountsOnly: true}
			for _, s := range g.countSubs {
				x.push(s, b)
			}
			for _, s := range x.fan.watchAll {
				if s.countRefs[g.id] == 0 { // not already a count subscriber of g
					x.push(s, b)
				}
			}
		}
		clear(g.pending)
		g.pending = g.pending[:0]
		g.countsChanged = false
		x.maybeDropGroup(g)
	}
	clear(dirty)
	x.fan.dirty = dirty[:0]
	for _, s := range x.fan.dead {
		x.detachLocked(s)
	}
	clear(x.fan.dead)
	x.fan.dead = x.fan.dead[:0]
	return x.fan.stats.batches.Load() - before
}

// coalesced returns the last delta of each user in p, in the order of
// those last deltas: the batch's one allocation.
func (x *index) coalesced(p []Delta) []Delta {
	if len(p) == 0 {
		return nil
	}
	if len(p) == 1 {
		return []Delta{p[0]}
	}
	seen, picks := x.fan.seen, x.fan.picks[:0]
	for i := len(p) - 1; i >= 0; i-- {
		if _, ok := seen[p[i].User]; !ok {
			seen[p[i].User] = struct{}{}
			picks = append(picks, i)
		}
	}
	out := make([]Delta, len(picks))
	for j, i := range picks {
		out[len(picks)-1-j] = p[i]
	}
	clear(seen)
	x.fan.picks = picks[:0]
	return out
}

// push queues b for s, or cuts s if its queue is full.
func (x *index) push(s *Subscriber, b Batch) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.max {
		s.err = ErrSlowConsumer
		s.queue = s.queue[:0]
		s.mu.Unlock()
		x.fan.stats.slow.Add(1)
		x.fan.dead = append(x.fan.dead, s)
		s.wake()
		return
	}
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	x.fan.stats.batches.Add(1)
	s.wake()
}

// close ends every subscription: the engine stopped.
func (x *index) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.fan.closed {
		return
	}
	x.fan.closed = true
	if x.fan.timer != nil {
		x.fan.timer.Stop()
	}
	for s := range x.fan.all {
		s.fail(ErrClosed)
	}
}
