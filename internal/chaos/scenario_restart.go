package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// rollingRestart stops a node with SIGTERM while its users reconnect to
// the next node: nobody may appear offline. The node then starts again on
// its data and must serve the same snapshots as the others.
func rollingRestart(ctx context.Context, e *Env, row *Row) error {
	all := e.Cluster.Nodes
	victim := all[len(all)-1]
	for _, u := range e.Users.On(victim) {
		u.SetPolicy(failOver)
	}
	stopped := phase{majority: e.others(victim)}
	from, err := e.Cluster.Term(victim)
	stopped.from = from
	code := victim.Process().ExitCode()
	row.note("%s exited %d %s after SIGTERM", victim.Name, code, secs(time.Since(from)))
	if err != nil {
		row.fail("SIGTERM: %s: %v", victim.Name, err)
	}
	e.settle(ctx, &stopped, grace+leaseTTL+3*time.Second, 30*time.Second)
	e.judgeConverge(row, "stopped", stopped)

	if err := e.Cluster.Start(ctx, e.API, victim); err != nil {
		row.fail("restart: %v (%s)", err, lastError(victim.LogPath))
		e.judgeFalse(row, "", stopped.from, time.Now())
		e.finish(ctx, row, e.Writers, e.others(victim))
		return nil
	}
	restarted := phase{from: time.Now(), majority: all}
	row.note("%s ready %s after its start", victim.Name, secs(time.Since(stopped.to)))
	e.settle(ctx, &restarted, 6*time.Second, 25*time.Second)
	e.judgeConverge(row, "restarted", restarted)
	e.judgeFalse(row, "", stopped.from, restarted.to)
	e.judgeResume(row, e.observersOn(victim)[0], stopped.from)
	e.finish(ctx, row, e.Writers, all)
	return nil
}

// wholeRestartRounds is how many times the whole cluster is restarted.
const wholeRestartRounds = 3

// extraStarts is how many more times a supervisor starts the nodes that
// exited, so that later rounds can still be measured.
const extraStarts = 3

// wholeRestart stops every node with SIGTERM and starts all of them on
// their data, three times: every node must exit cleanly and come up each
// time, and serve identical, correct snapshots soon after.
func wholeRestart(ctx context.Context, e *Env, row *Row) error {
	all := e.Cluster.Nodes
	up := 0
	for round := 1; round <= wholeRestartRounds; round++ {
		if round == wholeRestartRounds {
			// What backend sources stated must survive a restart of the
			// whole cluster: no write after the last one, so the final
			// check reads what was acknowledged before it.
			e.Writers.Stop()
		}
		var wg sync.WaitGroup
		errs := make([]error, len(all))
		took := make([]time.Duration, len(all))
		for i, n := range all {
			wg.Go(func() {
				at, err := e.Cluster.Term(n)
				errs[i], took[i] = err, time.Since(at)
			})
		}
		wg.Wait()
		for i, n := range all {
			if errs[i] != nil {
				row.fail("round %d: %s exited %d %s after SIGTERM: %s", round, n.Name, n.Process().ExitCode(),
					secs(took[i]), lastError(n.LogPath))
			}
		}
		start := time.Now()
		err := e.Cluster.Start(ctx, e.API, all...)
		if err == nil {
			up++
		}
		for try := 0; err != nil && try < extraStarts; try++ {
			if try == 0 {
				row.fail("round %d: the cluster did not come up", round)
			}
			var failed []*Node
			for _, n := range all {
				if ok, _ := n.Process().Exited(); ok {
					failed = append(failed, n)
					row.note("round %d start %d: %s exited %d: %s", round, try+1, n.Name, n.Process().ExitCode(), lastError(n.LogPath))
				}
			}
			if len(failed) == 0 {
				break
			}
			// A supervisor starts the nodes that exited once more.
			if err = e.Cluster.Launch(failed...); err == nil {
				err = e.Cluster.WaitReady(ctx, e.API, all...)
			}
		}
		if err != nil {
			row.note("round %d: still not up after %d more starts (%v); rounds stop", round, extraStarts, err)
			break
		}
		ready := phase{from: time.Now(), majority: all}
		row.note("round %d: ready in %s", round, secs(ready.from.Sub(start)))
		e.settle(ctx, &ready, 4*time.Second, 20*time.Second)
		e.judgeConverge(row, fmt.Sprintf("r%d", round), ready)
	}
	row.Offline = "-"
	row.FalseOfflines = "-"
	row.note("came up %d of %d times", up, wholeRestartRounds)
	e.finish(ctx, row, e.Writers, all)
	return nil
}

// judgeResume checks what the observer of a restarted node got when its
// client resumed from its revision after since: the missed changes, not a
// fresh snapshot (the stream still holds them; goal 4 of issue 14).
func (e *Env) judgeResume(row *Row, o *Observer, since time.Time) {
	_, _, notices := o.records()
	for _, n := range notices {
		if n.at.Before(since) {
			continue
		}
		switch n.what {
		case "fresh":
			row.note("the observer's resume onto the restarted %s got a fresh snapshot", o.Node.Name)
			row.fail("resume: a client resuming onto the restarted %s got a fresh snapshot instead of the missed changes", o.Node.Name)
			return
		case "resumed":
			row.note("the observer's resume onto the restarted %s got the missed changes", o.Node.Name)
			return
		}
	}
	row.note("the observer on %s did not resume", o.Node.Name)
}
