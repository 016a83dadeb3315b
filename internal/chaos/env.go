package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The population of every scenario.
const (
	group        = "chaos"
	usersPerNode = 33
	nodeCount    = 3
)

// Hosts of the test network: nodes at 1-3, external NATS servers at 11-13.
var (
	nodeHosts = []int{1, 2, 3}
	natsHosts = []int{11, 12, 13}
)

// writerIDs publish statuses in the background of every scenario;
// burstIDs only in the burst scenario.
var (
	writerIDs = []string{"w1", "w2", "w3"}
	burstIDs  = []string{"b1", "b2", "b3", "b4", "b5"}
)

// writeEvery is the pace of the background writers.
const writeEvery = 400 * time.Millisecond

// envOptions say what a scenario needs beyond the default.
type envOptions struct {
	// natsServers > 0 runs an external NATS of that many servers, and
	// the nodes point at it.
	natsServers int
}

// Env is one scenario's world: its network, its processes and its
// clients. Close removes all of it.
type Env struct {
	Name      string
	Dir       string
	Net       *Network
	TL        *Timeline
	API       *API
	Cluster   *Cluster
	NATS      *NATSCluster // external modes only
	Users     *Users
	Observers []*Observer
	Poller    *Poller
	Writers   *Writers
	// Notes are what setup had to work around, for the row.
	Notes []string

	counters map[string]watchCounter // every node's watch counters when setup ended

	logf   func(format string, args ...any)
	admin  string
	hc     *http.Client // WebSocket handshakes
	closed []func()     // in reverse order of setup
}

// newEnv builds the world of one scenario: network, (external NATS,)
// three nodes, the group and its users, connections, observers, poller
// and writers, and waits until every observer sees every user online.
func (s *Suite) newEnv(ctx context.Context, tag, name string, opt envOptions) (_ *Env, err error) {
	e := &Env{Name: name, Dir: filepath.Join(s.dir, name), TL: &Timeline{}, logf: s.logf, admin: s.admin}
	defer func() {
		if err != nil {
			s.logf("%s: setup failed: %v\n%s", name, err, e.Tails(40))
			e.Close()
		}
	}()
	if err := os.MkdirAll(e.Dir, 0o755); err != nil {
		return nil, err
	}
	hosts := nodeHosts
	if opt.natsServers > 0 {
		hosts = append(append([]int(nil), nodeHosts...), natsHosts[:opt.natsServers]...)
	}
	if e.Net, err = NewNetwork(ctx, tag, hosts); err != nil {
		return nil, err
	}
	e.onClose(e.Net.Close)
	e.API = newAPI(e.Net, s.admin, s.secret)
	e.hc = &http.Client{Transport: e.Net.transport()}

	cfg := ClusterConfig{Binary: s.presenced, Dir: e.Dir, Hosts: nodeHosts,
		AdminToken: s.admin, JWTSecret: s.secret, Flags: s.cfg.Flags}
	if opt.natsServers > 0 {
		bin, err := s.natsServer(ctx)
		if err != nil {
			return nil, err
		}
		e.NATS = newNATSCluster(bin, e.Dir, e.Net, e.TL, natsHosts[:opt.natsServers])
		e.onClose(e.NATS.Close)
		if err := e.NATS.Start(ctx); err != nil {
			return nil, fmt.Errorf("external NATS: %w", err)
		}
		cfg.NATSURL = e.NATS.URL()
	}
	e.Cluster = newCluster(cfg, e.Net, e.TL)
	e.onClose(e.Cluster.Close)
	if err := e.startCluster(ctx); err != nil {
		return nil, err
	}

	e.Users = newUsers(e.Cluster, e.Net, e.TL, s.secret)
	var ids []string
	for i, n := range e.Cluster.Nodes {
		for j := range usersPerNode {
			id := fmt.Sprintf("u%02d", i*usersPerNode+j+1)
			e.Users.Add(id, n)
			ids = append(ids, id)
		}
	}
	ids = append(append(ids, writerIDs...), burstIDs...)
	if err := seed(ctx, e.API, e.Cluster.Nodes[0], group, ids); err != nil {
		return nil, err
	}
	if err := e.waitMembers(ctx, len(ids)); err != nil {
		return nil, err
	}
	e.onClose(e.Users.Close)
	uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.Users.Start(uctx); err != nil {
		return nil, err
	}
	for _, n := range e.Cluster.Nodes {
		o := newObserver(n, group)
		e.Observers = append(e.Observers, o)
		e.onClose(o.Close)
		if err := o.Start(uctx, e.hc, s.admin); err != nil {
			return nil, err
		}
	}
	if err := e.waitAllSeen(uctx); err != nil {
		return nil, err
	}
	e.Poller = newPoller(e.API, e.Cluster, e.TL, group)
	e.Poller.Start()
	e.onClose(e.Poller.Close)
	e.Writers = newWriters(e.API, e.Cluster, e.TL, writerIDs)
	e.Writers.Start(writeEvery, 0, nil)
	e.onClose(e.Writers.Stop)
	// Let every node take a few writes and agree before the fault.
	if err := e.waitAgree(ctx, 20*time.Second); err != nil {
		return nil, err
	}
	if e.counters, err = e.watchCounters(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// startCluster starts the nodes together. A node that exits during a
// fresh cluster's start is started again, twice at most, as a supervisor
// would; each such start is noted.
func (e *Env) startCluster(ctx context.Context) error {
	err := e.Cluster.Start(ctx, e.API, e.Cluster.Nodes...)
	for try := 0; err != nil && try < 2; try++ {
		var failed []*Node
		for _, n := range e.Cluster.Nodes {
			if ok, _ := n.Process().Exited(); ok {
				failed = append(failed, n)
				e.Notes = append(e.Notes, fmt.Sprintf("setup: %s exited %d at its first start (%s); started again",
					n.Name, n.Process().ExitCode(), lastError(n.LogPath)))
			}
		}
		if len(failed) == 0 {
			break
		}
		if err = e.Cluster.Launch(failed...); err == nil {
			err = e.Cluster.WaitReady(ctx, e.API, e.Cluster.Nodes...)
		}
	}
	if err != nil {
		return fmt.Errorf("cluster start: %w", err)
	}
	return nil
}

func (e *Env) onClose(f func()) { e.closed = append(e.closed, f) }

// Close stops every client and process and removes the network.
func (e *Env) Close() {
	if e.closed != nil && e.Dir != "" {
		e.dump()
	}
	for i := len(e.closed) - 1; i >= 0; i-- {
		e.closed[i]()
	}
	e.closed = nil
}

// Tails returns the last lines of every process's log.
func (e *Env) Tails(lines int) string {
	var b strings.Builder
	var logs []string
	if e.Cluster != nil {
		for _, n := range e.Cluster.Nodes {
			logs = append(logs, n.LogPath)
		}
	}
	if e.NATS != nil {
		for _, s := range e.NATS.Servers {
			logs = append(logs, s.LogPath)
		}
	}
	for _, p := range logs {
		fmt.Fprintf(&b, "--- %s (last %d lines but repeated failures)\n%s\n", p, lines, tailFiltered(p, lines, repeated))
	}
	return b.String()
}

// waitMembers waits until every node's snapshot counts total members.
func (e *Env) waitMembers(ctx context.Context, total int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, node := range e.Cluster.Nodes {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s, r, err := e.API.Snapshot(qctx, node.URL, group)
			cancel()
			if err == nil && r.OK() && s.Total == total {
				n++
			}
		}
		if n == len(e.Cluster.Nodes) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: only %d nodes count %d members after 30s", n, total)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitAllSeen waits until every observer shows every connected user.
func (e *Env) waitAllSeen(ctx context.Context) error {
	for {
		short := 0
		for _, o := range e.Observers {
			p := o.present()
			for _, u := range e.Users.list {
				if !p[u.ID] {
					short++
				}
			}
		}
		if short == 0 {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("chaos: observers miss %d user sightings: %w", short, err)
		}
	}
}

// waitAgree waits until the last rounds of the poller show every node
// serving the same snapshot.
func (e *Env) waitAgree(ctx context.Context, max time.Duration) error {
	start := time.Now()
	names := e.nodeNames(e.Cluster.Nodes...)
	for {
		rs := e.Poller.between(start, time.Now())
		if n := len(rs); n >= 3 && agree(rs[n-1], names) && agree(rs[n-2], names) {
			return nil
		}
		if time.Since(start) > max {
			return fmt.Errorf("chaos: nodes serve different snapshots %v after setup", max)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func (e *Env) nodeNames(nodes ...*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// others returns the nodes but n.
func (e *Env) others(n *Node) []*Node {
	var out []*Node
	for _, o := range e.Cluster.Nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// observersOn returns the observers of nodes.
func (e *Env) observersOn(nodes ...*Node) []*Observer {
	var out []*Observer
	for _, o := range e.Observers {
		for _, n := range nodes {
			if o.Node == n {
				out = append(out, o)
			}
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
