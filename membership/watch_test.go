package membership_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
)

// TestWatchSurvivesServerDeath kills the server that holds the watch of
// the membership bucket (where the watch's consumer lives) in a
// three-server cluster. Writes go on through a new leader; the
// index must apply each one soon after it is acknowledged, instead of
// waiting behind a watch that went silent with its server.
func TestWatchSurvivesServerDeath(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	srvs := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := jetstream.New(natstest.Connect(t, srvs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jskv.CreateBucket(ctx, admin, jetstream.KeyValueConfig{
		Bucket: membership.DefaultBucket, History: 1, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatal(err)
	}
	// The watch's consumer lives on one server; the store talks to
	// another, which stays up. Placement is the cluster's choice: open
	// again until they differ.
	var st *membership.Store
	var victim string
	for attempt := 0; ; attempt++ {
		conn := srvs[attempt%len(srvs)]
		js, err := jetstream.New(natstest.Connect(t, conn))
		if err != nil {
			t.Fatal(err)
		}
		st, err = membership.Open(ctx, membership.Config{JetStream: js, Replicas: 3, Logger: zaptest.NewLogger(t),
			WatchCheck: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if victim = consumerServer(ctx, t, admin); victim != conn.Name() {
			t.Logf("the watch's consumer is on %s, the store talks to %s", victim, conn.Name())
			break
		}
		st.Close()
		if attempt == 10 {
			t.Fatal("the watch's consumer is always on the store's own server")
		}
	}
	t.Cleanup(st.Close)
	if _, err := st.CreateUser(ctx, membership.User{ID: "before", Username: "before", Active: true}); err != nil {
		t.Fatal(err)
	}
	for _, s := range srvs {
		if s.Name() == victim {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	alive := srvs[0]
	if alive.Name() == victim {
		alive = srvs[1]
	}
	js, err := jetstream.New(natstest.Connect(t, alive))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := fmt.Sprintf("after%d", i)
		// The write itself waits for a new leader; what follows its
		// acknowledgement must not.
		b := []byte(fmt.Sprintf(`{"id":%q,"username":%q,"active":true,"type":"user"}`, id, id))
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "$KV." + membership.DefaultBucket + ".users." + id, Data: b}); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		for {
			if _, ok := st.Index().User(id); ok {
				break
			}
			if time.Since(acked) > 5*time.Second {
				t.Fatalf("user %s acknowledged %v ago and still not in the index (watch resumed %d times)",
					id, time.Since(acked).Round(time.Millisecond), st.Resumes())
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s applied %v after its acknowledgement", id, time.Since(acked).Round(time.Millisecond))
	}
}

// consumerServer names the server that holds the (one) consumer of the
// membership bucket's stream: the store's watch.
func consumerServer(ctx context.Context, t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	st, err := js.Stream(ctx, "KV_"+membership.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	for ci := range st.ListConsumers(ctx).Info() {
		if ci.Cluster != nil && ci.Cluster.Leader != "" {
			return ci.Cluster.Leader
		}
	}
	t.Fatal("no consumer with a leader")
	return ""
}

// TestConcurrentCreatesInACluster creates users from two stores on two
// servers of a cluster at once: every create must succeed. Their numeric
// aliases are reserved with a compare-and-set, whose conflict a replicated
// stream reports with another error code than a single server; it was
// taken for a failure (500) instead of a conflict to try again.
func TestConcurrentCreatesInACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	srvs := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func(s *server.Server) *membership.Store {
		js, err := jetstream.New(natstest.Connect(t, s))
		if err != nil {
			t.Fatal(err)
		}
		st, err := membership.Open(ctx, membership.Config{JetStream: js, Replicas: 3, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	stores := []*membership.Store{open(srvs[0]), open(srvs[1])}
	errs := make(chan error, 40)
	for i, st := range stores {
		go func() {
			for j := range 20 {
				id := fmt.Sprintf("u%d-%02d", i, j)
				_, err := st.CreateUser(ctx, membership.User{ID: id, Username: id, Active: true})
				errs <- err
			}
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatalf("a concurrent create failed: %v", err)
		}
	}
}
