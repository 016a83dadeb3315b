// Package netpoll tells when idle sockets become readable, from one
// goroutine for all of them, so that a connection waiting for its client
// needs no goroutine (and no goroutine stack) of its own.
//
// A Watch is armed once: when its socket has something to read (data, the
// peer's close, an error), its callback runs once on the poller's
// goroutine and the watch stays quiet until Arm is called again. The
// callback must hand the work to another goroutine and return.
//
// Go's runtime poller does not tell readiness without a goroutine parked
// on each socket; this package asks the kernel with an epoll instance of
// its own (Linux only; elsewhere New fails and callers read with a
// goroutine per connection, as before).
package netpoll

import (
	"errors"
	"sync"
	"syscall"
)

// ErrUnsupported is New's error where the platform has no poller.
var ErrUnsupported = errors.New("netpoll: not supported on this platform")

// ErrClosed is returned for a watch of a closed poller.
var ErrClosed = errors.New("netpoll: poller closed")

// Watch is one socket's registration.
type Watch struct {
	p     *Poller
	rc    syscall.RawConn
	id    uint64
	ready func()
}

// Poller waits for the sockets watched through it.
type Poller struct {
	// mu guards the watches and closed; ctl holds it for reading, so
	// that no descriptor operation uses the epoll instance once Close
	// has begun.
	mu      sync.RWMutex
	watches map[uint64]*Watch // guarded by mu
	next    uint64            // guarded by mu
	closed  bool              // guarded by mu

	impl
}

// Watch registers rc's socket, armed: ready runs once, on the poller's
// goroutine, when the socket turns readable. rc must stay open until the
// watch is stopped or the socket closed (a closed socket leaves the
// poller by itself).
func (p *Poller) Watch(rc syscall.RawConn, ready func()) (*Watch, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.next++
	w := &Watch{p: p, rc: rc, id: p.next, ready: ready}
	p.watches[w.id] = w
	p.mu.Unlock()
	if err := p.ctl(w, opAdd); err != nil {
		p.forget(w)
		return nil, err
	}
	return w, nil
}

// Arm asks for one more callback once the socket is readable (at once if
// it is now). It fails once the socket is closed.
func (w *Watch) Arm() error { return w.p.ctl(w, opArm) }

// Stop unregisters the watch: no callback runs after it returns, except
// one already running.
func (w *Watch) Stop() {
	_ = w.p.ctl(w, opDel) // fails only for a closed socket, which left by itself
	w.p.forget(w)
}

func (p *Poller) forget(w *Watch) {
	p.mu.Lock()
	delete(p.watches, w.id)
	p.mu.Unlock()
}

// fire runs the callback of the watch with id, if it is still there.
func (p *Poller) fire(id uint64) {
	p.mu.RLock()
	w := p.watches[id]
	p.mu.RUnlock()
	if w != nil {
		w.ready()
	}
}

// failed closes a poller whose goroutine stopped by itself (the epoll
// instance failed): every watch left is called back once, to find that it
// cannot be armed again (ErrClosed), and new watches are refused.
func (p *Poller) failed() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	left := p.watches
	p.watches = map[uint64]*Watch{}
	p.mu.Unlock()
	for _, w := range left {
		w.ready()
	}
}

type op int

const (
	opAdd op = iota
	opArm
	opDel
)
