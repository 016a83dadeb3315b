package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DialContext opens a connection to addr from inside the namespace of the
// host that owns addr. The suite never dials from its own namespace, where
// no test address exists; and since a host's own clients reach it without
// crossing the bridge, cutting its link does not cut them off.
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	h, ok := n.hostOf(host)
	if !ok {
		return nil, fmt.Errorf("chaos: %s is not a host of the test network", addr)
	}
	var c net.Conn
	var derr error
	if err := runIn(n.hosts[h], func() {
		var d net.Dialer
		c, derr = d.DialContext(ctx, network, addr)
	}); err != nil {
		return nil, err
	}
	return c, derr
}

// Dial implements nats.CustomDialer.
func (n *Network) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return n.DialContext(ctx, network, addr)
}

// transport returns an HTTP transport that dials through the network.
func (n *Network) transport() *http.Transport {
	return &http.Transport{
		DialContext:         n.DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}
