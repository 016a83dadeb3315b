package presence

// Stats are the engine's counters and gauges, for metrics.
type Stats struct {
	// Counters since start.
	EventsApplied uint64 // stream entries applied to the index
	DeltasOut     uint64 // deltas recorded for groups
	BatchesOut    uint64 // batches queued to subscribers
	SlowConsumers uint64 // subscribers cut for falling behind
	SourceKicks   uint64 // presence stream leaders this node made step down over a stalled source
	// Gauges.
	Sessions    int // sessions and sources that count, all nodes
	OwnSessions int // open sessions on this node
	Users       int
	Groups      int
	Subscribers int
	Rev         uint64
}

// Stats returns the current counters.
func (e *Engine) Stats() Stats {
	st := e.x.stats()
	e.ownMu.Lock()
	st.OwnSessions = len(e.own)
	e.ownMu.Unlock()
	e.srcWatch.mu.Lock()
	st.SourceKicks = e.srcWatch.kicks
	e.srcWatch.mu.Unlock()
	return st
}

func (x *index) stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	st := Stats{
		EventsApplied: x.fan.stats.events.Load(),
		DeltasOut:     x.fan.stats.deltas.Load(),
		BatchesOut:    x.fan.stats.batches.Load(),
		SlowConsumers: x.fan.stats.slow.Load(),
		Users:         len(x.users),
		Groups:        len(x.groups),
		Subscribers:   x.fan.subscribers,
		Rev:           x.rev,
	}
	for _, s := range x.sessions {
		if x.counted(s) {
			st.Sessions++
		}
	}
	return st
}
