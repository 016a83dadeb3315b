package presence

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/faultnet"
	"github.com/presenced/presenced/protocol"
)

// TestSlowStoreIsNoOutage puts 80 ms of latency each way between a node
// and its NATS server, so that every lease refresh (which waits half a
// LeaseRefresh, 100 ms) times out although the store takes every write, the
// lease's as well, only late: a store loaded by a connect storm, or a
// nats-server starved of CPU by the snapshots of 100,000 subscribers,
// answers so. The node is not cut off from the store and must go on
// serving its users; before, it called itself unavailable after twice the
// lease TTL and closed every WebSocket with 4012. Twice: while its users
// write their sessions, and while nothing but its lease is written.
func TestSlowStoreIsNoOutage(t *testing.T) {
	for _, writing := range []bool{true, false} {
		name := "lease only"
		if writing {
			name = "sessions written"
		}
		t.Run(name, func(t *testing.T) { testSlowStore(t, writing) })
	}
}

func testSlowStore(t *testing.T, writing bool) {
	v := newEnv(t)
	v.addMember("g", "u1")
	nc, err := nats.Connect("nats://"+faultnet.Start(t, v.srv.Addr().String(), 80*time.Millisecond).Addr, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var log availabilityLog
	a := v.start(Config{JetStream: js, Conn: nc, NodeID: "a", Storage: jetstream.MemoryStorage, Coalesce: -1,
		LeaseTTL: 600 * time.Millisecond, LeaseRefresh: 200 * time.Millisecond,
		OnAvailability: log.record, Logger: zaptest.NewLogger(t).Named("a")})
	s, err := a.Connect(ctxT(t), SessionInfo{User: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	// Four times the TTL, twice as long as the rule for a store that takes
	// no writes gives; while writing, the user changes their status text
	// ten times a second, as the many users of a loaded node do.
	for end := time.Now().Add(4 * 600 * time.Millisecond); time.Now().Before(end); {
		if writing {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := s.SetStatus(ctx, protocol.StatusOnline, time.Now().Format(time.StampMilli))
			cancel()
			if err != nil {
				t.Fatalf("a write to the slow store failed: %v", err)
			}
		}
		if err := a.Available(); err != nil {
			t.Fatalf("the node calls itself unavailable while the store takes its writes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := a.Status("u1").Status; st != protocol.StatusOnline {
		t.Errorf("u1 is %s", st)
	}
	if log.String() != "[]" {
		t.Errorf("OnAvailability was told %s", &log)
	}
}
