package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// killFollower kills -9 a node that leads no stream: its users go offline
// everywhere once its lease lapses, and nobody else does.
func killFollower(ctx context.Context, e *Env, row *Row) error {
	victim, err := e.pickFollower(ctx, row)
	if err != nil {
		return err
	}
	return e.killNode(ctx, row, victim, nil)
}

// killLeader kills -9 the node leading the presence stream.
func killLeader(ctx context.Context, e *Env, row *Row) error {
	l, err := e.leaders(ctx)
	if err != nil {
		return fmt.Errorf("stream leaders: %w", err)
	}
	victim := e.Cluster.Node(l[presenceStream])
	if victim == nil {
		return fmt.Errorf("no node leads %s (%s)", presenceStream, describeLeaders(l))
	}
	row.note("killed %s; leaders: %s", victim.Name, describeLeaders(l))
	var elected <-chan election
	err = e.killNode(ctx, row, victim, func(from time.Time) {
		// How long the presence stream took no writes: the offline of
		// the victim's users cannot come sooner.
		var urls []string
		for _, n := range e.others(victim) {
			urls = append(urls, "nats://"+n.IP+":4222")
		}
		elected = watchElection(ctx, e.Net, urls, presenceStream, victim.Name, from)
	})
	row.note("%s", <-elected)
	return err
}

// pickFollower returns a node that leads no stream, moving leaders away
// from one when every node leads some.
func (e *Env) pickFollower(ctx context.Context, row *Row) (*Node, error) {
	nodes := e.Cluster.Nodes
	for try := 0; try < 4; try++ {
		l, err := e.leaders(ctx)
		if err != nil {
			return nil, fmt.Errorf("stream leaders: %w", err)
		}
		led := map[string][]string{}
		for st, n := range l {
			led[n] = append(led[n], st)
		}
		for i := len(nodes) - 1; i >= 0; i-- {
			if n := nodes[i]; len(led[n.Name]) == 0 {
				if try > 0 {
					// The step-downs elected new leaders: let leases
					// and watches settle before the fault.
					if err := e.waitAgree(ctx, 20*time.Second); err != nil {
						return nil, err
					}
					_ = sleep(ctx, leaseTTL)
				}
				row.note("killed %s; leaders: %s", n.Name, describeLeaders(l))
				return n, nil
			}
		}
		v := nodes[len(nodes)-1]
		to := nodes[0]
		for _, n := range nodes[:len(nodes)-1] {
			if len(led[n.Name]) < len(led[to.Name]) {
				to = n
			}
		}
		for _, st := range led[v.Name] {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := stepDown(sctx, e.Net, e.Cluster.NATSURLs(), st, to.Name)
			cancel()
			if err != nil {
				e.logf("step down %s: %v", st, err)
			}
		}
		_ = sleep(ctx, 2*time.Second)
	}
	return nil, errors.New("every node still leads a stream after step-downs")
}

// killNode kills -9 victim, whose users then stay away, and measures.
// afterKill, if set, is called right after the kill; it must not block.
func (e *Env) killNode(ctx context.Context, row *Row, victim *Node, afterKill func(from time.Time)) error {
	survivors := e.others(victim)
	ph := phase{majority: survivors, faulted: e.Users.On(victim)}
	for _, u := range ph.faulted {
		u.SetPolicy(stayAway)
	}
	ph.from = e.Cluster.Kill(victim)
	if afterKill != nil {
		afterKill(ph.from)
	}
	probe := e.probeMembershipWrite(ctx, survivors[0], ph.from.Add(time.Second))
	e.settle(ctx, &ph, 16*time.Second, 30*time.Second)
	e.judgeOffline(row, ph)
	e.judgeFalse(row, "", ph.from, ph.to)
	e.judgeConverge(row, "", ph)
	row.note("%s", <-probe)
	e.finish(ctx, row, e.Writers, survivors)
	return nil
}

// probeMembershipWrite creates a user on n at time at and reports how long
// the write took.
func (e *Env) probeMembershipWrite(ctx context.Context, n *Node, at time.Time) <-chan string {
	out := make(chan string, 1)
	go func() {
		_ = sleep(ctx, time.Until(at))
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		r, err := e.API.do(wctx, "POST", n.URL+"/v1/users", map[string]any{"id": "probe", "username": "probe"})
		took := time.Since(start)
		switch {
		case err != nil:
			out <- fmt.Sprintf("membership write on %s after the fault: no answer in %s", n.Name, secs(took))
		case !r.OK():
			out <- fmt.Sprintf("membership write on %s after the fault: %s in %s", n.Name, r, secs(took))
		default:
			out <- fmt.Sprintf("membership write on %s after the fault took %s", n.Name, secs(took))
		}
	}()
	return out
}
