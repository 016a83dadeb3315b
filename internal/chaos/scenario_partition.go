package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// partition cuts the link of the node leading the presence stream, without
// closing a socket, and heals it.
func partition(ctx context.Context, e *Env, row *Row) error {
	victim := e.Cluster.Nodes[len(e.Cluster.Nodes)-1]
	if l, err := e.leaders(ctx); err == nil && e.Cluster.Node(l[presenceStream]) != nil {
		victim = e.Cluster.Node(l[presenceStream])
		row.note("cut %s; leaders: %s", victim.Name, describeLeaders(l))
	} else {
		row.note("cut %s (stream leaders unknown: %v)", victim.Name, err)
	}
	all := e.Cluster.Nodes
	ph := phase{majority: e.others(victim), faulted: e.Users.On(victim)}
	ph.from = e.TL.Mark(victim.Name, markCut)
	if err := e.Net.Cut(ctx, victim.Host); err != nil {
		return err
	}
	e.settle(ctx, &ph, 20*time.Second, 30*time.Second)
	e.judgeOffline(row, ph)
	e.judgeConverge(row, "cut", ph)
	e.judgeFalse(row, "cut", ph.from, ph.to)
	e.judgeMinority(row, victim, ph.from, ph.to)

	healed := phase{majority: all}
	healed.from = e.TL.Mark(victim.Name, markHeal)
	if err := e.Net.Heal(ctx, victim.Host); err != nil {
		return err
	}
	e.settle(ctx, &healed, 12*time.Second, 30*time.Second)
	e.judgeConverge(row, "healed", healed)
	e.judgeFalse(row, "healed", healed.from, healed.to)
	e.finish(ctx, row, e.Writers, all)
	return nil
}

// judgeMinority checks that the cut-off node said so while it was cut off:
// REST 503 "unavailable" instead of a frozen snapshot, and its WebSocket
// clients told with an error push or a close.
func (e *Env) judgeMinority(row *Row, victim *Node, from, to time.Time) {
	var stale, unavailable, other int
	var first503 time.Time
	var staleRev uint64
	var others []string
	for _, r := range e.Poller.between(from, to) {
		p, ok := r.nodes[victim.Name]
		if !ok {
			continue
		}
		late := r.at.Sub(from) > toldGoal
		switch {
		case p.ok():
			if late {
				stale++
				staleRev = p.snap.Rev
			}
		case p.err == nil && p.reply.Status == http.StatusServiceUnavailable && p.reply.Code == "unavailable":
			unavailable++
			if first503.IsZero() {
				first503 = r.at
			}
		default:
			other++
			if len(others) < 3 {
				if p.err != nil {
					others = append(others, p.err.Error())
				} else {
					others = append(others, p.reply.String())
				}
			}
		}
	}
	switch {
	case first503.IsZero():
		row.note("minority REST never answered 503 (%d snapshots served after %s, last at rev %d; %d other answers %v)",
			stale, secs(toldGoal), staleRev, other, others)
		row.fail("minority REST: %s kept serving snapshots with 200 while cut off (%d after %s)", victim.Name, stale, secs(toldGoal))
	default:
		row.note("minority REST 503 after %s (%d stale 200s after %s)", secs(first503.Sub(from)), stale, secs(toldGoal))
		if first503.Sub(from) > toldGoal || stale > 0 {
			row.fail("minority REST: %s answered 503 only after %s, and 200 %d times after %s",
				victim.Name, secs(first503.Sub(from)), stale, secs(toldGoal))
		}
	}

	o := e.observersOn(victim)[0]
	_, _, notices := o.records()
	var told *notice
	for i, n := range notices {
		if !n.at.Before(from) && !n.at.After(to) && (n.what == "error" || n.what == "closed") {
			told = &notices[i]
			break
		}
	}
	frames, last, rev := o.lastActivity()
	if told == nil {
		seen := "no frame since the cut"
		if last.After(from) {
			seen = "last frame at +" + secs(last.Sub(from))
		}
		row.note("minority WebSocket observer not told (%s; rev %d; %d frames in all)", seen, rev, frames)
		row.fail("minority WebSocket: the observer on %s was neither sent an error nor closed while cut off", victim.Name)
	} else {
		row.note("minority WebSocket observer told after %s (%s %s)", secs(told.at.Sub(from)), told.what, told.code)
		if told.at.Sub(from) > toldGoal {
			row.fail("minority WebSocket: the observer on %s was told only after %s", victim.Name, secs(told.at.Sub(from)))
		}
	}
	closed := 0
	codes := map[int]int{}
	for _, u := range e.Users.On(victim) {
		if cs := u.closes(from, to); len(cs) > 0 {
			closed++
			codes[cs[0]]++
		}
	}
	var cs []string
	for c, n := range codes {
		cs = append(cs, fmt.Sprintf("%d×%d", c, n))
	}
	row.note("%d of %d minority users' connections closed %s", closed, len(e.Users.On(victim)), strings.Join(cs, ","))
}
