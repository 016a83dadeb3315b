package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/faultnet"
	"github.com/presenced/presenced/internal/natstest"
)

// TestASilentRouteIsClosed silences the only link between two servers
// configured as the embedded one is, as a partition that drops packets
// would: the sockets stay open and carry nothing. Both ends must close
// their routes within the keepalive's bound, so that the routes are dialed
// afresh once the network answers again. By NATS's defaults they stayed
// open for a minute and more.
func TestASilentRouteIsClosed(t *testing.T) {
	ports := natstest.FreePorts(t, 2)
	b := natstest.StartWith(t, natstest.Options{ServerName: "b", ClusterName: "keepalive", ClusterPort: ports[1],
		NoAdvertise: true, Configure: routeKeepalive})
	link := faultnet.Start(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), 0)
	a := natstest.StartWith(t, natstest.Options{ServerName: "a", ClusterName: "keepalive", ClusterPort: ports[0],
		Routes: []string{"nats-route://" + link.Addr}, NoAdvertise: true, Configure: routeKeepalive})
	for deadline := time.Now().Add(10 * time.Second); a.NumRoutes() == 0 || b.NumRoutes() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no route between a and b: a %d, b %d", a.NumRoutes(), b.NumRoutes())
		}
	}

	silenced := time.Now()
	link.Silence()
	limit := routePingInterval*(routeMaxPingsOut+1) + 2*time.Second
	for a.NumRoutes() != 0 || b.NumRoutes() != 0 {
		if time.Since(silenced) > limit {
			t.Fatalf("routes still open %v after their link went silent: a %d, b %d", time.Since(silenced), a.NumRoutes(), b.NumRoutes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("routes closed %v after their link went silent", time.Since(silenced))
}
