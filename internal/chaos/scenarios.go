package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Scenario is one fault the suite inflicts and measures.
type Scenario struct {
	Name  string
	About string
	// Budget bounds the scenario, setup included; past it the scenario
	// fails, so that the suite as a whole stays within its time.
	Budget time.Duration
	env    envOptions
	run    func(ctx context.Context, e *Env, row *Row) error
}

// Scenarios returns every scenario, in the order the suite runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "kill-follower", Budget: 75 * time.Second, About: "kill -9 of a node that leads no stream", run: killFollower},
		{Name: "kill-leader", Budget: 75 * time.Second, About: "kill -9 of the node leading the presence stream", run: killLeader},
		{Name: "rolling-restart", Budget: 90 * time.Second, About: "SIGTERM of a node while its users reconnect to another node, then its restart", run: rollingRestart},
		{Name: "partition", Budget: 100 * time.Second, About: "the presence stream leader's link cut without closing sockets, then healed", run: partition},
		{Name: "whole-restart", Budget: 180 * time.Second, About: "SIGTERM of all three nodes and a start on their data, three times", run: wholeRestart},
		{Name: "external-leader-kill", Budget: 75 * time.Second, About: "external 3-server NATS: kill -9 of the server leading the presence stream",
			env: envOptions{natsServers: 3}, run: externalLeaderKill},
		{Name: "external-restart", Budget: 100 * time.Second, About: "external single NATS: kill -9, started again on its data after 8s",
			env: envOptions{natsServers: 1}, run: externalRestart},
		{Name: "burst", Budget: 75 * time.Second, About: "five backend sources publish 300 acknowledged changes each, 50ms apart, on one node", run: burst},
	}
}

// leaders returns the leader of every stream, asking the NATS servers the
// nodes use that are up.
func (e *Env) leaders(ctx context.Context) (map[string]string, error) {
	now := time.Now()
	var urls []string
	if e.NATS != nil {
		for _, s := range e.NATS.Servers {
			if e.TL.Majority(s.Name, now) {
				urls = append(urls, s.URL)
			}
		}
	} else {
		for _, n := range e.Cluster.Nodes {
			if e.TL.Majority(n.Name, now) {
				urls = append(urls, "nats://"+n.IP+":4222")
			}
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return streamLeaders(qctx, e.Net, urls)
}

func describeLeaders(l map[string]string) string {
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, fmt.Sprintf("%s=%s", strings.TrimPrefix(st, "KV_presenced_"), l[st]))
	}
	return strings.Join(parts, " ")
}

// lastError returns the last line of a log that says why presenced
// exited.
func lastError(path string) string {
	lines := strings.Split(tailFile(path, 200), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "presenced: ") {
			return lines[i]
		}
	}
	return ""
}
