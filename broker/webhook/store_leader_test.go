package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/natstest"
)

// TestStoreWritesOutlastTheLossOfTheStreamLeader cuts the leader of the
// bucket's stream off from the other two servers, as a kill -9 would, and
// then creates, updates and deletes a webhook through a store on one of
// them. A read or write sent while the stream has no leader gets no answer
// at all: each must be sent again until the new leader takes it. And the
// store's watch lived on the old leader: the store must apply the writes
// it waits for without it. Each write completes within the election's
// time, not the request's deadline.
func TestStoreWritesOutlastTheLossOfTheStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	servers, cut := natstest.StartCutCluster(t, 3)
	stores := make([]*webhook.Store, 3)
	for i, srv := range servers {
		stores[i] = openStore(t, srv, webhook.StoreConfig{Replicas: 3})
	}
	stream := "KV_" + webhook.DefaultBucket
	leader := natstest.StreamLeader(t, servers, stream)
	st := stores[(leader+1)%3]
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	w, err := st.Create(ctx, webhook.Webhook{URL: "https://a.example/hook"})
	if err != nil {
		t.Fatal(err)
	}

	cut(leader)
	start := time.Now()
	elected := natstest.NewLeader(ctx, servers, stream, leader)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s, %s after the leader was cut off: %v", what, time.Since(start).Round(time.Millisecond), err)
		}
		t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
	}
	_, err = st.Update(ctx, w.ID, func(w *webhook.Webhook) error { w.Users = []string{"u1"}; return nil })
	step("updated", err)
	// At once after writes that met the election: the new leader may
	// still hold them in process, and a compare-and-set on the same key
	// is refused until it applied them ("wrong last sequence", 10164),
	// which is no reason to answer not found.
	w2, err := st.Create(ctx, webhook.Webhook{URL: "https://b.example/hook"})
	step("created", err)
	step("deleted", st.Delete(ctx, w2.ID))
	took := time.Since(start)
	select {
	case at := <-elected:
		e := at.Sub(start)
		// Each write is sent again within moments, and the view reads
		// what its watch missed from the new leader: the writes complete
		// soon after the election, not once the watch, an ordered consumer
		// on the old leader, comes back by itself (20 s after the cut).
		t.Logf("new leader after %s", e.Round(time.Millisecond))
		if took-e > 6*time.Second {
			t.Fatalf("the writes took %s, %s after the new leader's election", took.Round(time.Millisecond), (took - e).Round(time.Millisecond))
		}
	case <-time.After(time.Second):
		t.Fatalf("the writes completed after %s with no new leader seen", took.Round(time.Millisecond))
	}
}
