package presence

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// A node serves presence only while it can tell the truth. When its lease
// writes fail it is cut off from the store: if it also hears only a
// minority of the nodes (a partition), or if the writes fail for longer
// than any leader election takes, or its NATS connection is gone, the other
// nodes will soon count its users offline, and its own picture is frozen.
// It then says so (Engine.Available, Config.OnAvailability) until a lease
// write succeeds again.

// FaultAfter is how long a node may stay unavailable, with its NATS
// connection up, before Faulted reports it: long enough for any election
// or healed partition, short enough for an orchestrator to restart a node
// that does not recover by itself.
const FaultAfter = 2 * time.Minute

// availability tracks whether this node can serve presence.
type availability struct {
	e *Engine

	mu sync.Mutex
	// mu guards the following fields.
	// failingSince is when lease writes began to fail, moved up by every
	// write the store acknowledged since; zero while the lease is written.
	failingSince time.Time
	down         error // why this node is unavailable; nil while it is not
	downSince    time.Time
}

func (a *availability) init(e *Engine) { a.e = e }

// leaseWritten records a successful lease write: the node is available.
func (a *availability) leaseWritten(now time.Time) {
	a.mu.Lock()
	was := a.down
	a.failingSince, a.down, a.downSince = time.Time{}, nil, time.Time{}
	a.mu.Unlock()
	if was != nil {
		a.e.log.Info("presence: available again", zap.NamedError("was", was))
		a.tell(nil)
	}
}

// wrote records that the store acknowledged a write of this node (a
// session, a backend event, a deletion, its lease) sent at t: a store that
// takes writes is not cut off, only slow (a loaded stream answers a lease
// refresh after its deadline, and takes it all the same), so lease
// failures count from then.
func (a *availability) wrote(t time.Time) {
	a.mu.Lock()
	if !a.failingSince.IsZero() && t.After(a.failingSince) {
		a.failingSince = t
	}
	a.mu.Unlock()
}

// leaseFailed records a failed lease write and decides whether the node is
// still available. While it is not, the reason it reports follows the
// latest failure: an operator reading it a minute into an outage learns
// what fails now, not what failed when the outage began.
func (a *availability) leaseFailed(now time.Time, cause error) {
	e := a.e
	a.mu.Lock()
	if a.failingSince.IsZero() {
		a.failingSince = now
	}
	failing := now.Sub(a.failingSince)
	a.mu.Unlock()
	var why error
	switch {
	case !e.cfg.Conn.IsConnected() && failing >= e.cfg.LeaseRefresh:
		why = fmt.Errorf("presence: no connection to NATS for %v", failing.Round(time.Millisecond))
	case failing >= e.cfg.LeaseRefresh*3/2 && !e.live.majority(e.x.leaseNodes()):
		why = fmt.Errorf("presence: cut off from the other nodes (a minority of them heard) and the store takes no writes for %v: %w",
			failing.Round(time.Millisecond), cause)
	case failing >= 2*e.cfg.LeaseTTL:
		why = fmt.Errorf("presence: the store takes no writes for %v: %w", failing.Round(time.Millisecond), cause)
	default:
		return
	}
	a.mu.Lock()
	if a.down != nil {
		if !errors.Is(a.down, ErrResetting) {
			a.down = why
		}
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.setDown(now, why)
}

// setDown makes the node unavailable for why, unless it is already.
func (a *availability) setDown(now time.Time, why error) {
	a.mu.Lock()
	if a.down != nil {
		a.mu.Unlock()
		return
	}
	a.down, a.downSince = why, now
	if a.failingSince.IsZero() {
		a.failingSince = now
	}
	a.mu.Unlock()
	a.e.log.Warn("presence: unavailable", zap.Error(why))
	a.e.counts.unavailable.Add(1)
	a.tell(why)
}

func (a *availability) tell(err error) {
	if f := a.e.cfg.OnAvailability; f != nil {
		f(err)
	}
}

// Available reports why this node cannot serve presence right now (it is
// cut off from the store, or resetting after the stream was lost), nil
// while it can. Every read path should answer "unavailable" instead of a
// frozen picture while it is not nil.
func (e *Engine) Available() error {
	e.avail.mu.Lock()
	defer e.avail.mu.Unlock()
	return e.avail.down
}

// Err is Available: readiness checks report it.
func (e *Engine) Err() error { return e.Available() }

// Faulted reports a node that has been unavailable for FaultAfter while
// its NATS connection is up: it does not recover by itself, and a liveness
// check should fail so that it is restarted. Nil otherwise.
func (e *Engine) Faulted() error {
	e.avail.mu.Lock()
	down, since := e.avail.down, e.avail.downSince
	e.avail.mu.Unlock()
	if down == nil || !e.cfg.Conn.IsConnected() {
		return nil
	}
	if d := e.clock.Now().Sub(since); d >= FaultAfter {
		return fmt.Errorf("presence: unavailable for %v: %w", d.Round(time.Second), down)
	}
	return nil
}

// leaseNodes lists the nodes that hold a lease.
func (x *index) leaseNodes() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.leases))
	for n := range x.leases {
		out = append(out, n)
	}
	return out
}
