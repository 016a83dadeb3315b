package presence

import (
	"sync/atomic"
	"time"
)

// Stats are the engine's counters and gauges, for metrics.
type Stats struct {
	// Counters since start.
	EventsApplied  uint64 // stream entries applied to the index
	DeltasOut      uint64 // deltas recorded for groups
	BatchesOut     uint64 // batches queued to subscribers
	SlowConsumers  uint64 // subscribers cut for falling behind
	SourceKicks    uint64 // presence stream leaders this node made step down over a stalled source
	StatusChanges  uint64 // changes of a user's status or text applied
	StatusEvents   uint64 // backend status events this node stored (Publish, PublishBatch, NATS)
	WatchResumes   uint64 // watches of the presence bucket resumed after a stall or end
	LeasesLost     uint64 // times this node found its own lease gone and took it back
	OrphansDeleted uint64 // sessions this node stored, no longer held open and deleted (see orphans.go)
	NodesExpired   uint64 // other nodes' leases this node deleted (their users went offline)
	Unavailable    uint64 // times this node became unavailable (cut off from the store)
	// Gauges.
	Sessions    int // sessions and sources that count, all nodes
	OwnSessions int // open sessions on this node
	Users       int
	Groups      int
	Subscribers int
	Rev         uint64
	// FanoutWindow is the coalescing window open now: Config.Coalesce, or
	// wider after a flush that queued many batches (see FanoutBudget); 0
	// when none is open and the next change goes out at once.
	FanoutWindow time.Duration
}

// Stats returns the current counters.
func (e *Engine) Stats() Stats {
	st := e.x.stats()
	e.ownMu.Lock()
	st.OwnSessions = len(e.own) - e.heldN
	e.ownMu.Unlock()
	e.srcWatch.mu.Lock()
	st.SourceKicks = e.srcWatch.kicks
	e.srcWatch.mu.Unlock()
	st.StatusEvents = e.counts.statusEvents.Load()
	st.LeasesLost = e.counts.leasesLost.Load()
	st.OrphansDeleted = e.counts.orphans.Load()
	st.NodesExpired = e.counts.nodesExpired.Load()
	st.Unavailable = e.counts.unavailable.Load()
	e.lifeMu.Lock()
	if e.follow != nil {
		st.WatchResumes = e.follow.Resumes()
	}
	e.lifeMu.Unlock()
	st.WatchResumes += e.counts.resumesBefore.Load()
	return st
}

func (x *index) stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	st := Stats{
		EventsApplied: x.fan.stats.events.Load(),
		DeltasOut:     x.fan.stats.deltas.Load(),
		BatchesOut:    x.fan.stats.batches.Load(),
		StatusChanges: x.fan.stats.changes.Load(),
		SlowConsumers: x.fan.stats.slow.Load(),
		Users:         len(x.users),
		Groups:        len(x.groups),
		Subscribers:   x.fan.subscribers,
		Rev:           x.rev,
	}
	if x.fan.armed {
		st.FanoutWindow = x.fan.window
	}
	st.Sessions = x.tally.counted(x.leases)
	return st
}

// engineCounts are the engine's own counters.
type engineCounts struct {
	statusEvents, leasesLost, nodesExpired, unavailable atomic.Uint64
	orphans                                             atomic.Uint64 // sessions deleted by dropOrphans
	// resumesBefore keeps the resumes of the followers a reset replaced.
	resumesBefore atomic.Uint64
}
