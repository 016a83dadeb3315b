package chaos

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// externalLeaderKill kills -9 the server of an external 3-server NATS
// that leads the presence stream. Every presenced node stays up, so
// nobody may appear offline.
func externalLeaderKill(ctx context.Context, e *Env, row *Row) error {
	l, err := e.leaders(ctx)
	if err != nil {
		return fmt.Errorf("stream leaders: %w", err)
	}
	srv := e.NATS.Server(l[presenceStream])
	if srv == nil {
		return fmt.Errorf("no NATS server leads %s (%s)", presenceStream, describeLeaders(l))
	}
	row.note("killed %s; leaders: %s", srv.Name, describeLeaders(l))
	ph := phase{majority: e.Cluster.Nodes}
	ph.from = e.NATS.Kill(srv)
	var urls []string
	for _, s := range e.NATS.Servers {
		if s != srv {
			urls = append(urls, s.URL)
		}
	}
	elected := watchElection(ctx, e.Net, urls, presenceStream, srv.Name, ph.from)
	e.settle(ctx, &ph, 20*time.Second, 30*time.Second)
	el := <-elected
	if el.err == nil {
		ph.storeBack = ph.from.Add(el.took)
	}
	row.note("%s", el)
	row.Offline = "-"
	e.judgeFalse(row, "", ph.from, ph.to)
	e.judgeConverge(row, "", ph)
	e.finish(ctx, row, e.Writers, e.Cluster.Nodes)
	return nil
}

// natsOutage is how long the external NATS stays down.
const natsOutage = 8 * time.Second

// externalRestart kills -9 the single server of an external NATS and
// starts it again on its data 8s later: presenced must recover by itself.
func externalRestart(ctx context.Context, e *Env, row *Row) error {
	srv := e.NATS.Servers[0]
	killed := e.NATS.Kill(srv)
	_ = sleep(ctx, natsOutage)
	if err := e.NATS.Start(ctx, srv); err != nil {
		return fmt.Errorf("restart %s: %w", srv.Name, err)
	}
	ph := phase{from: time.Now(), majority: e.Cluster.Nodes}
	e.settle(ctx, &ph, 15*time.Second, 45*time.Second)
	row.Offline = "-"
	e.judgeFalse(row, "", killed, ph.to)
	e.judgeConverge(row, "", ph)

	var ok, unavailable, other int
	for _, r := range e.Poller.between(killed, ph.from) {
		for _, p := range r.nodes {
			switch {
			case p.ok():
				ok++
			case p.err == nil && p.reply.Status == http.StatusServiceUnavailable:
				unavailable++
			default:
				other++
			}
		}
	}
	row.note("while NATS was down the nodes answered snapshots: %d×200, %d×503, %d other", ok, unavailable, other)
	e.finish(ctx, row, e.Writers, e.Cluster.Nodes)
	return nil
}
