package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/internal/natstest"
)

// TestExternalClusterGetsR3 starts a node on an external NATS of three
// JetStream servers while the third is still starting, as a cluster that
// forms with its nodes does: the meta leader refuses a stream of three
// replicas for a moment. The node took that for a cluster too small and
// replicated its buckets once, on one server, whose loss then left every
// node without presence for good. It must ask again and make them R3.
func TestExternalClusterGetsR3(t *testing.T) {
	start := natstest.ClusterOf(t, 3)
	s1, _ := start(0), start(1)
	third := make(chan struct{})
	go func() {
		defer close(third)
		time.Sleep(time.Second)
		start(2)
	}()
	defer func() { <-third }()
	startServer(t, "", func(c *broker.Config) { c.NATSURL, c.NodeName = s1.ClientURL(), "a" })
	js, err := jetstream.New(natstest.Connect(t, s1))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"KV_presenced_membership", "KV_presenced_presence"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		st, err := js.Stream(ctx, name)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if n := st.CachedInfo().Config.Replicas; n != 3 {
			t.Fatalf("%s is R%d on a cluster of three", name, n)
		}
	}
}
