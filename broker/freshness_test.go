package broker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestFreshnessSeesAStall: a check that runs after the process did not
// run for longer than stallGap (its ticker's last tick is that old) waits
// for one catch-up, shared by every check waiting meanwhile; checks after
// it, and checks with no stall before them, do not wait.
func TestFreshnessSeesAStall(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	f := newFreshness(func(context.Context) error {
		calls.Add(1)
		<-release
		return nil
	}, zap.NewNop())
	ctx := context.Background()
	f.observe()
	f.wait(ctx) // no stall: at once
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d catch-ups without a stall", n)
	}
	f.tick.Store(f.now() - int64(2*stallGap)) // the process stopped
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { f.wait(ctx) })
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d catch-ups for one stall, want 1", n)
	}
	f.wait(ctx)
	if n := calls.Load(); n != 1 {
		t.Fatalf("a check after the catch-up caught up again (%d)", n)
	}
}
