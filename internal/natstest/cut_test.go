package natstest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/presenced/presenced/internal/natstest"
)

// TestCutLeavesNoRouteAround: cut(i) silences the proxies of server i's
// routes, so every route must run through one. The servers are given each
// other only through proxies, but a server tells the others of the peers
// it meets, and one told of a server it has no route to yet dials it at
// once, on its own port. When that direct route won the race with the
// proxied one (4 clusters in 10), cut left it open: a "cut" stream leader
// kept its quorum through the peer it still reached, and the leader-loss
// tests met a leader that never changed, or writes answered by one leader
// and reads by another.
func TestCutLeavesNoRouteAround(t *testing.T) {
	if testing.Short() {
		t.Skip("clusters of three servers")
	}
	for round := range 8 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			servers, _ := natstest.StartCutCluster(t, 3)
			own := map[int]string{}
			for _, s := range servers {
				own[s.ClusterAddr().Port] = s.Name()
			}
			// Each server meets the other two, and a route dialed on a
			// peer's own port, if any, comes within moments of that.
			deadline := time.Now().Add(10 * time.Second)
			for !allMet(servers) {
				if time.Now().After(deadline) {
					t.Fatal("the servers never all met")
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			for _, s := range servers {
				rz, err := s.Routez(&server.RoutezOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rz.Routes {
					if name, ok := own[r.Port]; r.DidSolicit && ok {
						t.Errorf("%s dialed %s on its own port %d, around the proxy", s.Name(), name, r.Port)
					}
				}
			}
		})
	}
}

// allMet reports whether every server has a route to every other.
func allMet(servers []*server.Server) bool {
	for _, s := range servers {
		rz, err := s.Routez(&server.RoutezOptions{})
		if err != nil {
			return false
		}
		met := map[string]bool{}
		for _, r := range rz.Routes {
			met[r.RemoteName] = true
		}
		if len(met) < len(servers)-1 {
			return false
		}
	}
	return true
}
