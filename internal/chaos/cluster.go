package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Lease settings every node runs with: the defaults, written out so that a
// change of defaults does not change what the suite measures.
const (
	leaseTTL     = 6 * time.Second
	leaseRefresh = 2 * time.Second
	grace        = 5 * time.Second
)

// Credentials of the suite's NATS. Routes authenticate with routePassword;
// the suite's own JetStream queries (stream leaders, step-downs) sign in as
// natsUser: the admin of presenced's account on the embedded servers, and
// the one user of the external ones, whose routes need routePassword too.
const (
	routePassword = "chaos-route-password"
	natsUser      = "chaos"
	natsPassword  = "chaos-nats-password"
)

// readyTimeout bounds how long a node may take to report ready: a node
// that restarts catches up from its peers first, on two shared cores.
const readyTimeout = 60 * time.Second

// Node is one presenced process of a cluster.
type Node struct {
	Name    string // also its embedded nats-server's name
	Host    int
	IP      string
	URL     string // REST base
	WS      string // WebSocket URL
	DataDir string
	LogPath string

	mu sync.Mutex
	// mu guards the following field.
	proc *Process
}

// Process returns the node's current process, nil before the first start.
func (n *Node) Process() *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// ClusterConfig says how the nodes of a cluster run.
type ClusterConfig struct {
	Binary string
	Dir    string // data dirs and logs
	Hosts  []int  // one node per host
	// NATSURL points every node at an external NATS; empty: embedded NATS
	// servers joined by routes with a password, their client ports open on
	// the node's address for the suite's JetStream queries, as natsUser.
	NATSURL    string
	AdminToken string
	JWTSecret  string
	// Flags are added to every node's command line, after the suite's own.
	Flags []string
}

// Cluster is a set of presenced nodes on a test network.
type Cluster struct {
	cfg   ClusterConfig
	net   *Network
	tl    *Timeline
	Nodes []*Node
}

func newCluster(cfg ClusterConfig, n *Network, tl *Timeline) *Cluster {
	c := &Cluster{cfg: cfg, net: n, tl: tl}
	for i, h := range cfg.Hosts {
		name := fmt.Sprintf("n%d", i+1)
		ip := n.IP(h)
		c.Nodes = append(c.Nodes, &Node{
			Name: name, Host: h, IP: ip,
			URL:     "http://" + ip + ":8080",
			WS:      "ws://" + ip + ":8080/v1/ws",
			DataDir: filepath.Join(cfg.Dir, name),
			LogPath: filepath.Join(cfg.Dir, name+".log"),
		})
	}
	return c
}

// args is the command line of node n.
func (c *Cluster) args(n *Node) []string {
	args := []string{
		"--node-name", n.Name,
		"--data-dir", n.DataDir,
		"--http-addr", n.IP + ":8080",
		"--admin-token", c.cfg.AdminToken,
		"--jwt-secret", c.cfg.JWTSecret,
		"--lease-ttl", leaseTTL.String(),
		"--lease-refresh", leaseRefresh.String(),
		"--grace", grace.String(),
	}
	if c.cfg.NATSURL != "" {
		args = append(args, "--nats-url", c.cfg.NATSURL)
	} else {
		var routes []string
		for _, o := range c.Nodes {
			if o != n {
				routes = append(routes, "nats-route://"+o.IP+":6222")
			}
		}
		args = append(args,
			"--cluster-name", "chaos",
			"--cluster-listen", n.IP+":6222",
			"--cluster-password", routePassword,
			"--routes", strings.Join(routes, ","),
			"--nats-listen", n.IP+":4222",
			"--nats-admin-user", natsUser,
			"--nats-admin-password", natsPassword)
	}
	return append(args, c.cfg.Flags...)
}

// NATSURLs are the client URLs of the NATS servers the nodes use.
func (c *Cluster) NATSURLs() []string {
	if c.cfg.NATSURL != "" {
		return strings.Split(c.cfg.NATSURL, ",")
	}
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, "nats://"+n.IP+":4222")
	}
	return urls
}

// Node returns the node named name.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Launch starts the processes of nodes without waiting for them.
func (c *Cluster) Launch(nodes ...*Node) error {
	for _, n := range nodes {
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return err
		}
		p, err := startProcess(n.Name, c.net.NS(n.Host), n.LogPath, c.cfg.Binary, c.args(n))
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.proc = p
		n.mu.Unlock()
		c.tl.Mark(n.Name, markStart)
	}
	return nil
}

// Start starts nodes together (JetStream's replicated buckets need their
// peers) and waits until every one reports ready.
func (c *Cluster) Start(ctx context.Context, api *API, nodes ...*Node) error {
	if err := c.Launch(nodes...); err != nil {
		return err
	}
	return c.WaitReady(ctx, api, nodes...)
}

// WaitReady waits until every node answers /readyz with 200. A node whose
// process exits fails at once, with its exit status.
func (c *Cluster) WaitReady(ctx context.Context, api *API, nodes ...*Node) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = waitReady(ctx, api, n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func waitReady(ctx context.Context, api *API, n *Node) error {
	p := n.Process()
	var last string
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited with status %d before it was ready", n.Name, p.ExitCode())
		default:
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		r, err := api.Ready(rctx, n.URL)
		cancel()
		if err == nil && r.OK() {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%s %s", r, r.Body)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %s", n.Name, readyTimeout, last)
		case <-p.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to node n and returns the time it was sent.
func (c *Cluster) Kill(n *Node) time.Time {
	at := c.tl.Mark(n.Name, markDown)
	if p := n.Process(); p != nil {
		p.Kill()
	}
	return at
}

// Term sends SIGTERM to node n and waits for its exit; it returns the time
// the signal was sent and the exit error.
func (c *Cluster) Term(n *Node) (time.Time, error) {
	at := c.tl.Mark(n.Name, markDown)
	p := n.Process()
	if p == nil {
		return at, nil
	}
	return at, p.Term(45 * time.Second)
}

// Close kills every node still running.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		if p := n.Process(); p != nil {
			if ok, _ := p.Exited(); !ok {
				p.Kill()
			}
		}
	}
}
