package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/internal/natstest"
)

// TestStreamsElectAtTheRaftPace cuts off the server leading twenty
// replicated streams, as a kill -9 would, and checks that each stream has a
// new leader within the longest election timeout of raftpace.go, plus two
// seconds for the vote on a loaded machine. At NATS's default pace (4 to
// 9 s), the slowest of twenty took 7.2 and 7.6 s, and of ten up to 11.3 s.
func TestStreamsElectAtTheRaftPace(t *testing.T) {
	srvs, cut := natstest.StartCutCluster(t, 3)
	nc := natstest.Connect(t, srvs[1])
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var streams []string
	for i := range 20 {
		name := fmt.Sprintf("pace%d", i)
		// The first requests of a forming cluster may go unanswered.
		if _, err := jskv.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
			return js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name},
				Storage: jetstream.MemoryStorage, Replicas: 3})
		}); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, name)
	}
	// Every stream led by s1, the server to be cut off.
	for _, name := range streams {
		for natstest.StreamLeader(t, srvs, name) != 0 {
			req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: "s1"}})
			if _, err := nc.RequestWithContext(ctx, fmt.Sprintf(server.JSApiStreamLeaderStepDownT, name), req); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	var elected []<-chan time.Time
	for _, name := range streams {
		elected = append(elected, natstest.NewLeader(ctx, srvs, name, 0))
	}
	cutAt := time.Now()
	cut(0)
	took := make([]time.Duration, len(streams))
	for i, ch := range elected {
		select {
		case at := <-ch:
			took[i] = at.Sub(cutAt)
		case <-ctx.Done():
			t.Fatalf("stream %s has no new leader after %v", streams[i], time.Since(cutAt))
		}
	}
	slices.Sort(took)
	t.Logf("new leaders after %v", took)
	if limit := raftMaxElectionTimeout + 2*time.Second; took[len(took)-1] > limit {
		t.Fatalf("the last stream had a new leader %v after its leader was cut off (want at most %v)", took[len(took)-1], limit)
	}
}
