package membership

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/presenced/presenced/internal/jskv"
)

// Writes that rest on a compare-and-set (an update of a record as the
// index has it, the reservation of a numeric alias) lose whenever another
// writer got there first. Those of one store take turns per key, so that
// they never make each other lose; a try lost to another node is tried
// again, once this store has caught up with the write it lost to, after a
// pause that grows and differs from one writer to the next, until the
// caller's context ends.

// contendFor bounds the tries of a write whose context has no deadline.
const contendFor = 10 * time.Second

// turn is the queue of this store's writers of one key.
type turn struct {
	token   chan struct{} // holds one while a writer has the turn
	writers int           // holding or waiting; the turn is dropped at 0
}

// takeTurn waits until this store's other writers of key are done, or
// ctx ends; release gives the turn to the next.
func (s *Store) takeTurn(ctx context.Context, key string) (release func(), err error) {
	s.turnMu.Lock()
	t := s.turns[key]
	if t == nil {
		t = &turn{token: make(chan struct{}, 1)}
		s.turns[key] = t
	}
	t.writers++
	s.turnMu.Unlock()
	leave := func() {
		s.turnMu.Lock()
		if t.writers--; t.writers == 0 {
			delete(s.turns, key)
		}
		s.turnMu.Unlock()
	}
	select {
	case t.token <- struct{}{}:
		return func() { <-t.token; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// contended runs try, a write of key that returns ErrConflict when it
// lost a compare-and-set, until it does not lose or ctx ends (contendFor
// without a deadline). retry tells try that a try before it lost.
func (s *Store) contended(ctx context.Context, key string, try func(ctx context.Context, retry bool) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, contendFor)
		defer cancel()
	}
	release, err := s.takeTurn(ctx, key)
	if err != nil {
		return fmt.Errorf("membership: write %s: %w", key, err)
	}
	defer release()
	pause := time.Millisecond
	for lost := 0; ; lost++ {
		err := try(ctx, lost > 0)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		wait := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return fmt.Errorf("%w: %s: lost %d tries to other writers before %v", ErrConflict, key, lost+1, ctx.Err())
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// catchUp waits until the index has applied key as the stream's leader
// has it: the write a compare-and-set on the index's revision lost to.
// It reports nothing: the next try does.
func (s *Store) catchUp(ctx context.Context, key string) {
	if e, err := jskv.GetFromLeader(ctx, s.cfg.JetStream, s.kv, key); err == nil {
		_ = s.waitApplied(ctx, e.Revision())
	}
}
