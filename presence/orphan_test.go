package presence

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// TestSessionClosedDuringAnElectionGoesOffline closes a session while the
// presence stream has lost its leader (cut off from the other servers, as a
// kill -9 would leave it) for longer than the close may wait. The close's
// write fails, and the stored session, with no expiry, belongs to a node
// whose lease stays alive: unless the node writes it again, the user
// shows online for as long as the node runs.
func TestSessionClosedDuringAnElectionGoesOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	servers, cut := natstest.StartCutCluster(t, 3)
	js0, err := jetstream.New(natstest.Connect(t, servers[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jskv.CreateBucket(ctxT(t), js0, jetstream.KeyValueConfig{
		Bucket: membership.DefaultBucket, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatal(err)
	}
	engines := make([]*Engine, 2)
	for i := range engines {
		nc := natstest.Connect(t, servers[i])
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		engines[i], err = New(Config{
			JetStream: js, Conn: nc, NodeID: fmt.Sprintf("n%d", i+1), Storage: jetstream.FileStorage, Replicas: 3,
			LeaseRefresh: 500 * time.Millisecond, LeaseTTL: 3 * time.Second, Grace: 300 * time.Millisecond,
			Coalesce: -1, Logger: zaptest.NewLogger(t).Named(fmt.Sprintf("n%d", i+1)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(engines[i].Kill)
		if err := engines[i].Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	// The stream's leader must be the third server, which serves no engine.
	stream := streamName(DefaultBucket)
	for deadline := time.Now().Add(30 * time.Second); !servers[2].JetStreamIsStreamLeader("$G", stream); {
		if time.Now().After(deadline) {
			t.Fatal("the third server never led the presence stream")
		}
		for _, s := range servers[:2] {
			if s.JetStreamIsStreamLeader("$G", stream) {
				_ = s.JetStreamStepdownStream("$G", stream)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	s, err := engines[0].Connect(ctxT(t), SessionInfo{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, engines[1], "u online on n2", func() bool { return engines[1].Status("u").Status == protocol.StatusOnline })

	cut(2)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // an election takes 4-9 s
	err = s.Close(ctx)
	cancel()
	t.Logf("close: %v", err)
	for deadline := start.Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if engines[0].Status("u").Status == protocol.StatusOffline && engines[1].Status("u").Status == protocol.StatusOffline {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("u still %s on n1 and %s on n2 %s after its only session closed", engines[0].Status("u").Status,
				engines[1].Status("u").Status, time.Since(start).Round(time.Millisecond))
		}
	}
	t.Logf("u offline everywhere %s after the close", time.Since(start).Round(time.Millisecond))
}
