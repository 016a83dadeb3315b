package presence

import "sync/atomic"

// fanout is the index's delivery state: dirty groups waiting for the end of
// the coalescing window, and counters.
type fanout struct {
	dirty       []*group
	stats       counters
	subscribers int
}

type counters struct {
	events, deltas, batches, slow atomic.Uint64
}

func (f *fanout) init() {}

// markDirty queues g for the next flush.
func (x *index) markDirty(g *group) {
	if !x.loaded || g.dirty {
		return
	}
	g.dirty = true
	x.fan.dirty = append(x.fan.dirty, g)
}

// afterApplyLocked runs once per applied entry.
func (x *index) afterApplyLocked() {
	for _, g := range x.fan.dirty {
		g.dirty, g.pending, g.countsChanged = false, g.pending[:0], false
		x.maybeDropGroup(g)
	}
	x.fan.dirty = x.fan.dirty[:0]
}

// Subscriber receives the batches of the groups it subscribes to.
type Subscriber struct{}

func (x *index) close() {}
