package presence

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
)

// TestStalledSourceIsKicked starts a three-server JetStream cluster and an
// engine whose membership bucket does not exist yet, so that the presence
// stream's first attempt to source it goes unanswered and nats-server would
// not try again for more than 30 seconds. Once the membership bucket exists and holds a
// member, the engine must notice that sourcing is behind, make the
// presence stream's leader step down, and see the member arrive.
func TestStalledSourceIsKicked(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	s1 := natstest.StartCluster(t, 3)[0]
	nc := natstest.Connect(t, s1)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const mbucket = "late_membership"
	cfg := Config{
		JetStream: js, Conn: nc, NodeID: "n1", Storage: jetstream.MemoryStorage, Replicas: 3,
		MembershipBucket: mbucket, LeaseRefresh: 200 * time.Millisecond, LeaseTTL: 2 * time.Second,
		SourceStall: time.Second, Coalesce: -1, Logger: zaptest.NewLogger(t),
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Kill)
	if err := e.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	// The presence stream's leader has tried to source the missing
	// stream by now: nats-server sets a replicated stream's sources up
	// 0.1-0.8 s after its election, which came before Start returned.
	// Nobody answers a consumer request for a stream that does not
	// exist; nats-server waits 30 s for the answer and backs off before it
	// tries again by itself.
	time.Sleep(3 * time.Second)
	mkv, err := jskv.CreateBucket(ctxT(t), js, jetstream.KeyValueConfig{Bucket: mbucket, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(membership.Member{GroupID: "g", UserID: "u", Role: membership.RoleMember})
	if _, err := mkv.Put(ctxT(t), membership.MemberKey("g", "u"), b); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for deadline := start.Add(60 * time.Second); e.Snapshot("g").Total != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the member never reached the presence bucket")
		}
	}
	t.Logf("member sourced %v after it was written", time.Since(start))
	if e.Stats().SourceKicks == 0 {
		t.Fatal("the member arrived without the engine kicking the source: nats-server retried first?")
	}
}
