package jskv_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/jskv"
)

var errLost = errors.New("lost")

// TestContendTakesTurns runs writers of one key and of another at once:
// those of one key never overlap, and each try that loses is tried again
// until it wins.
func TestContendTakesTurns(t *testing.T) {
	var turns jskv.Turns
	var inside [2]atomic.Int32
	var overlaps, retries atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			k := i % 2
			lose := 2 // each write loses twice before it wins
			err := turns.Contend(t.Context(), []string{"a", "b"}[k], errLost, func(_ context.Context, retry bool) error {
				if inside[k].Add(1) > 1 {
					overlaps.Add(1)
				}
				defer inside[k].Add(-1)
				if retry {
					retries.Add(1)
				}
				if lose > 0 {
					lose--
					return errLost
				}
				return nil
			})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if overlaps.Load() > 0 {
		t.Errorf("writers of one key overlapped %d times", overlaps.Load())
	}
	if retries.Load() != 32 {
		t.Errorf("%d tries were told they retry, want 32", retries.Load())
	}
}

// TestContendEndsWithItsContext gives up a write that always loses when
// its context ends, with the lost error, and a writer that waits for the
// turn when its own context ends.
func TestContendEndsWithItsContext(t *testing.T) {
	var turns jskv.Turns
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- turns.Contend(ctx, "k", errLost, func(context.Context, bool) error {
			once.Do(func() { close(started) })
			return errLost
		})
	}()
	<-started
	wctx, wcancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer wcancel()
	err := turns.Contend(wctx, "k", errLost, func(context.Context, bool) error {
		t.Error("a writer ran while another had the turn")
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for the turn past the deadline: %v, want the deadline", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errLost) {
			t.Errorf("a write that always loses: %v, want the lost error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write that always loses still tries 5s after its deadline")
	}
	// The turn is free again.
	if err := turns.Contend(t.Context(), "k", errLost, func(context.Context, bool) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
