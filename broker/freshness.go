package broker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// A process that was stopped (SIGSTOP, a frozen VM) wakes with the
// membership index it had: tokens revoked and users deleted meanwhile
// still pass until its watch delivers the changes, which can take a
// resume of the watch. Handshakes that waited in the listen backlog then
// got their hello and a snapshot of their groups before the change closed
// them. After such a stall, no credential is checked until the index has
// applied what the store holds (membership.Store.CaughtUp), for at most
// stallCatchUpWait.

const (
	// stallTick is how often the process notes that it runs.
	stallTick = 100 * time.Millisecond
	// stallGap is how long it must not have run to count as stalled: ten
	// ticks missed.
	stallGap = time.Second
	// stallCatchUpWait bounds a catch-up: longer than a resume of the
	// index's watch. A store that cannot answer within it is no reason to
	// refuse every credential: the changes close what they must once the
	// index applies them.
	stallCatchUpWait = 5 * time.Second
)

// freshness tells the authenticator whether the index may be behind
// because the process stalled, and catches it up.
type freshness struct {
	catchUp func(context.Context) error
	log     *zap.Logger
	start   time.Time // the base of the monotonic times below

	tick    atomic.Int64 // when the process was last seen to run
	stalled atomic.Int64 // when a stall was last seen to end (0: none)
	caught  atomic.Int64 // when the last catch-up that ended began

	mu sync.Mutex
	// mu guards the following field.
	flight chan struct{} // closed when the catch-up under way ends
}

func newFreshness(catchUp func(context.Context) error, log *zap.Logger) *freshness {
	return &freshness{catchUp: catchUp, log: log, start: time.Now()}
}

// now is the monotonic time since start.
func (f *freshness) now() int64 { return int64(time.Since(f.start)) }

// run notes every stallTick that the process runs, until quit.
func (f *freshness) run(quit <-chan struct{}) {
	t := time.NewTicker(stallTick)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			f.observe()
		}
	}
}

// observe notes that the process runs now, and a stall if it had not for
// stallGap.
func (f *freshness) observe() {
	now := f.now()
	if prev := f.tick.Swap(now); prev != 0 && time.Duration(now-prev) > stallGap {
		f.stalled.Store(now)
		f.log.Warn("the process did not run for a while: credentials are checked once the membership index caught up",
			zap.Duration("stalled", time.Duration(now-prev).Round(time.Millisecond)))
	}
}

// wait returns once the index may be read: at once, unless a stall was
// seen since the last catch-up, in which case it waits for one to end or
// for ctx. A check that runs before the ticker after a stall sees the
// stall itself.
func (f *freshness) wait(ctx context.Context) {
	if f == nil {
		return
	}
	if tick := f.tick.Load(); tick != 0 && time.Duration(f.now()-tick) > stallGap {
		f.observe()
	}
	if f.stalled.Load() <= f.caught.Load() {
		return
	}
	f.mu.Lock()
	ch := f.flight
	if ch == nil {
		ch = make(chan struct{})
		f.flight = ch
		go f.catchUpOnce(ch)
	}
	f.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// catchUpOnce catches the index up for every check waiting on ch.
func (f *freshness) catchUpOnce(ch chan struct{}) {
	began := f.now()
	ctx, cancel := context.WithTimeout(context.Background(), stallCatchUpWait)
	err := f.catchUp(ctx)
	cancel()
	if err != nil {
		f.log.Warn("the membership index did not catch up with the store after a stall; credentials are checked against it as it is",
			zap.Error(err))
	}
	f.caught.Store(began) // a stall seen after began asks for another
	f.mu.Lock()
	f.flight = nil
	f.mu.Unlock()
	close(ch)
}
