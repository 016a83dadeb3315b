package jskv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// A write that rests on a compare-and-set (an update of a record as it was
// read, the reservation of a number) loses whenever another writer got
// there first. Turns makes the writers of one key in one process take
// turns, so that they never make each other lose; a try lost to another
// process is tried again after a pause that grows and differs from one
// writer to the next, until the caller's context ends.

// ContendFor bounds the tries of a write whose context has no deadline.
const ContendFor = 10 * time.Second

// Turns queues a process's writers per key. The zero value is ready.
type Turns struct {
	mu sync.Mutex
	m  map[string]*turn // mu guards the map
}

// turn is the queue of the writers of one key.
type turn struct {
	token   chan struct{} // holds one while a writer has the turn
	writers int           // holding or waiting; the turn is dropped at 0
}

// take waits until the other writers of key are done, or ctx ends;
// release gives the turn to the next.
func (t *Turns) take(ctx context.Context, key string) (release func(), err error) {
	t.mu.Lock()
	if t.m == nil {
		t.m = map[string]*turn{}
	}
	q := t.m[key]
	if q == nil {
		q = &turn{token: make(chan struct{}, 1)}
		t.m[key] = q
	}
	q.writers++
	t.mu.Unlock()
	leave := func() {
		t.mu.Lock()
		if q.writers--; q.writers == 0 {
			delete(t.m, key)
		}
		t.mu.Unlock()
	}
	select {
	case q.token <- struct{}{}:
		return func() { <-q.token; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// Contend runs try, a write of key, in key's turn, until it returns an
// error that is not lost, or ctx ends (ContendFor without a deadline);
// retry tells try that a try before it lost, for it to read again what it
// rests on. A write still losing when ctx ends returns lost, wrapped.
func (t *Turns) Contend(ctx context.Context, key string, lost error, try func(ctx context.Context, retry bool) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ContendFor)
		defer cancel()
	}
	release, err := t.take(ctx, key)
	if err != nil {
		return fmt.Errorf("jskv: waiting to write %s: %w", key, err)
	}
	defer release()
	pause := time.Millisecond
	for tries := 1; ; tries++ {
		err := try(ctx, tries > 1)
		if !errors.Is(err, lost) {
			return err
		}
		wait := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return fmt.Errorf("%w: %s: lost %d tries to other writers before %v", lost, key, tries, ctx.Err())
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}
