package membership_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
)

// TestAcknowledgedUserFoundDuringAnElection: a user created through one
// node is acknowledged, and the bucket's stream loses its leader (cut
// off, as by a kill -9) before another node's index has applied the
// creation. An update of that user through the other node must not answer
// "not found": the node looks the user up in the stream, which has no
// leader to answer until the election ends, and must ask again until it
// does. Before, it asked once, got no answer, and the update failed.
func TestAcknowledgedUserFoundDuringAnElection(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of three servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	servers, cut := natstest.StartCutCluster(t, 3)
	stores := storesOn(t, ctx, servers)
	stream := "KV_" + membership.DefaultBucket
	leader := natstest.StreamLeader(t, servers, stream)
	writer, reader := stores[(leader+1)%3], stores[(leader+2)%3]

	// The reader's index stops applying after the group: its watch waits
	// in this subscriber until the gate opens.
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	defer open()
	held := make(chan struct{})
	reader.Subscribe(func(c membership.Change) {
		if c.Group != nil && c.Group.ID == "gate" {
			close(held)
			<-gate
		}
	})
	if _, err := writer.CreateGroup(ctx, membership.Group{ID: "gate", Name: "gate"}); err != nil {
		t.Fatal(err)
	}
	<-held
	if _, err := writer.CreateUser(ctx, membership.User{ID: "u", Username: "u", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := reader.Index().User("u"); ok {
		t.Fatal("the reader's index applied the user behind its gate")
	}

	cut(leader)
	start := time.Now()
	elected := natstest.NewLeader(ctx, servers, stream, leader)
	go func() { // the gate opens once a new leader is elected
		defer open()
		select {
		case at := <-elected:
			t.Logf("new leader after %s", at.Sub(start).Round(time.Millisecond))
		case <-ctx.Done():
		}
	}()
	uctx, ucancel := context.WithTimeout(ctx, 30*time.Second)
	defer ucancel()
	u, err := reader.UpdateUser(uctx, "u", func(u *membership.User) error { u.Name = "U"; return nil })
	if err != nil {
		t.Fatalf("update %s after the leader was cut off: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if u.Name != "U" || u.Username != "u" {
		t.Fatalf("updated user: %+v", u)
	}
	t.Logf("updated after %s", time.Since(start).Round(time.Millisecond))
}
