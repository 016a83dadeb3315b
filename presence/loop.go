package presence

import (
	"sync/atomic"
	"time"
)

// The engine's background loops (lease, sweeper, sourcing check,
// heartbeat, auto-away) wait between passes with sleep, on the engine's
// clock.

// loops counts the background loops a running engine has, and idle how
// many of them are waiting in sleep right now (a test that drives the
// clock lets time pass once they all wait).
type loops struct {
	n    atomic.Int32
	idle atomic.Int32
}

// sleep waits d on the engine's clock, or until wake is signalled (nil:
// never), and reports false once the engine stops its workers. A d that is
// not positive returns at once.
func (e *Engine) sleep(d time.Duration, wake <-chan struct{}) bool {
	if d <= 0 {
		select {
		case <-e.quit:
			return false
		default:
			return true
		}
	}
	// The loop stops counting as idle as soon as its timer fires, before
	// it wakes: a test that advanced the clock then waits for its pass.
	var busy atomic.Bool
	wakeUp := func() {
		if busy.CompareAndSwap(false, true) {
			e.loops.idle.Add(-1)
		}
	}
	tick := make(chan struct{}, 1)
	e.loops.idle.Add(1)
	t := e.clock.AfterFunc(d, func() { wakeUp(); kick(tick) })
	defer t.Stop()
	defer wakeUp()
	select {
	case <-e.quit:
		return false
	case <-tick:
	case <-wake:
	}
	return true
}

// goLoop runs a background loop owned by the engine's workers.
func (e *Engine) goLoop(f func()) {
	e.wg.Add(1)
	e.loops.n.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.loops.n.Add(-1)
		f()
	}()
}
