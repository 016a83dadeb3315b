package presence

import "time"

// Clock is the engine's source of local time and timers. Grace periods,
// leases, expiries, auto-away and the coalescing window all run on it, so a
// test can drive them with a fake clock. Timestamps that every node must
// agree on never come from it: they are the KV entries' server times.
//
// AfterFunc must call f in its own goroutine (or synchronously from a fake
// clock's advance), never while the caller of AfterFunc holds a lock it needs.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not run yet and reports whether it did.
	Stop() bool
}

// SystemClock is the real clock, the default.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
