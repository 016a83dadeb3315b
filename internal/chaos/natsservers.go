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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSServer is a nats-server process of an external NATS.
type NATSServer struct {
	Name     string
	Host     int
	IP       string
	URL      string
	StoreDir string
	LogPath  string

	mu sync.Mutex
	// mu guards the following field.
	proc *Process
}

// NATSCluster is an external NATS: one server, or several joined by
// routes, each with JetStream on file storage.
type NATSCluster struct {
	bin     string
	net     *Network
	tl      *Timeline
	Servers []*NATSServer
}

func newNATSCluster(bin, dir string, n *Network, tl *Timeline, hosts []int) *NATSCluster {
	c := &NATSCluster{bin: bin, net: n, tl: tl}
	for i, h := range hosts {
		name := fmt.Sprintf("nats%d", i+1)
		ip := n.IP(h)
		c.Servers = append(c.Servers, &NATSServer{
			Name: name, Host: h, IP: ip, URL: "nats://" + ip + ":4222",
			StoreDir: filepath.Join(dir, name), LogPath: filepath.Join(dir, name+".log"),
		})
	}
	return c
}

// URL is the client URL list of every server, with the suite's
// credentials: presenced connects with it.
func (c *NATSCluster) URL() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, strings.Replace(s.URL, "nats://", "nats://"+natsUser+":"+natsPassword+"@", 1))
	}
	return strings.Join(urls, ",")
}

// args runs a server with one user and, in a cluster, routes that
// authenticate: the user and password in --cluster set the routes'
// authorization, those in --routes are what a server routes with.
func (c *NATSCluster) args(s *NATSServer) []string {
	args := []string{"--server_name", s.Name, "-a", s.IP, "-p", "4222", "-js", "-sd", s.StoreDir,
		"--user", natsUser, "--pass", natsPassword}
	if len(c.Servers) > 1 {
		route := func(ip string) string { return "nats://route:" + routePassword + "@" + ip + ":6222" }
		var routes []string
		for _, o := range c.Servers {
			if o != s {
				routes = append(routes, route(o.IP))
			}
		}
		args = append(args, "--cluster_name", "chaosnats", "--cluster", route(s.IP),
			"--routes", strings.Join(routes, ","))
	}
	return args
}

// Start starts servers (all when none are named) and waits until
// JetStream answers on each.
func (c *NATSCluster) Start(ctx context.Context, servers ...*NATSServer) error {
	if len(servers) == 0 {
		servers = c.Servers
	}
	for _, s := range servers {
		if err := os.MkdirAll(s.StoreDir, 0o755); err != nil {
			return err
		}
		p, err := startProcess(s.Name, c.net.NS(s.Host), s.LogPath, c.bin, c.args(s))
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.proc = p
		s.mu.Unlock()
		c.tl.Mark(s.Name, markStart)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var errs []error
	for _, s := range servers {
		errs = append(errs, c.waitJetStream(ctx, s))
	}
	return errors.Join(errs...)
}

func (c *NATSCluster) waitJetStream(ctx context.Context, s *NATSServer) error {
	var last error
	for {
		last = jsAnswers(ctx, c.net, s.URL)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: JetStream not available: %v", s.Name, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func jsAnswers(ctx context.Context, n *Network, url string) error {
	nc, err := natsConnect(n, url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = js.AccountInfo(actx)
	return err
}

// Server returns the server named name.
func (c *NATSCluster) Server(name string) *NATSServer {
	for _, s := range c.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Kill sends SIGKILL to server s and returns the time.
func (c *NATSCluster) Kill(s *NATSServer) time.Time {
	at := c.tl.Mark(s.Name, markDown)
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p != nil {
		p.Kill()
	}
	return at
}

// Close kills every server.
func (c *NATSCluster) Close() {
	for _, s := range c.Servers {
		s.mu.Lock()
		p := s.proc
		s.mu.Unlock()
		if p != nil {
			if ok, _ := p.Exited(); !ok {
				p.Kill()
			}
		}
	}
}

// natsConnect connects to one server, through the test network, as
// natsUser.
func natsConnect(n *Network, url string) (*nats.Conn, error) {
	return nats.Connect(url, nats.SetCustomDialer(n), nats.Timeout(2*time.Second),
		nats.NoReconnect(), nats.DontRandomize(), nats.Name("presence-chaos"), nats.UserInfo(natsUser, natsPassword))
}
