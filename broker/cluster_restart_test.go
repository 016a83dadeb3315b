package broker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestClusterWholeRestart stops every node of a cluster with a graceful
// shutdown and starts them all again on their data, three times: the
// cluster must come up every time, with its membership. Before, starting
// all three failed in most runs with "context deadline exceeded" creating
// or reading a bucket while the meta leader changed.
func TestClusterWholeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a three-node cluster")
	}
	nodes := startCluster(t)
	seedCluster(t, nodes[0], "alice", "bob")
	for _, n := range nodes {
		waitMembers(t, n.testServer, "team", 2)
	}
	for round := 1; round <= 3; round++ {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = n.Shutdown(ctx)
			}()
		}
		wg.Wait()
		start := time.Now()
		for i, err := range startNodes(t, nodes) {
			if err != nil {
				t.Fatalf("round %d: node %s did not start: %v", round, nodes[i].name, err)
			}
		}
		t.Logf("round %d: all up in %v", round, time.Since(start).Round(time.Millisecond))
		for _, n := range nodes {
			waitMembers(t, n.testServer, "team", 2)
		}
		waitAgree(t, "team", nodes...)
		call(t, "POST", nodes[round%3].URL+"/v1/users", testAdminToken, map[string]any{"id": fmt.Sprintf("r%d", round), "username": fmt.Sprintf("r%d", round)}, nil)
	}
}
