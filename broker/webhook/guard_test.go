package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestForbiddenRange(t *testing.T) {
	tests := []struct {
		addr string
		bad  bool
	}{
		{"8.8.8.8", false},
		{"93.184.215.14", false},
		{"2606:4700:4700::1111", false},
		{"203.0.113.10", false}, // documentation range: not routable, harmless
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"169.254.169.254", true}, // cloud metadata
		{"fe80::1", true},
		{"fc00::1", true},
		{"fd00:ec2::254", true}, // cloud metadata over IPv6
		{"0.0.0.0", true},
		{"::", true},
		{"0.1.2.3", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"255.255.255.255", true},
		{"100.100.100.200", true}, // a cloud metadata service in the shared range
		{"198.18.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:8.8.8.8", false},
		{"::127.0.0.1", true},
		{"64:ff9b::7f00:1", true},   // NAT64 of 127.0.0.1
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2002:7f00:1::", true},     // 6to4 of 127.0.0.1
		{"2002:a00:1::", true},      // 6to4 of 10.0.0.1
		{"2002:808:808::", false},
		{"fec0::1", true},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.addr)
		if got := forbiddenRange(ip); (got != "") != tt.bad {
			t.Errorf("forbiddenRange(%s) = %q, want forbidden %v", tt.addr, got, tt.bad)
		}
		err := dialControl("tcp", netip.AddrPortFrom(ip, 443).String(), nil)
		if (err != nil) != tt.bad || (err != nil && !errors.Is(err, errForbiddenAddr)) {
			t.Errorf("dialControl(%s) = %v, want refused %v", tt.addr, err, tt.bad)
		}
	}
}

// fakeResolver answers from a map.
type fakeResolver map[string][]string

func (r fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	addrs, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, a := range addrs {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	return out, nil
}

func TestCheckTarget(t *testing.T) {
	r := fakeResolver{
		"hooks.example":   {"93.184.215.14"},
		"internal.corp":   {"10.0.0.7"},
		"mixed.example":   {"93.184.215.14", "127.0.0.1"},
		"metadata.google": {"169.254.169.254"},
	}
	tests := []struct {
		url  string
		want string // "" when accepted, else a part of the message
	}{
		{"https://hooks.example/x", ""},
		{"https://93.184.215.14:8443/x", ""},
		{"http://127.0.0.1:8080/x", "loopback"},
		{"http://[::1]/x", "loopback"},
		{"http://[::ffff:127.0.0.1]/x", "loopback"},
		{"http://10.0.0.1/x", "private"},
		{"http://[fd12::1]/x", "private"},
		{"http://169.254.169.254/latest/meta-data", "link-local"},
		{"http://0.0.0.0/", "unspecified"},
		{"http://224.0.0.1/", "multicast"},
		{"https://internal.corp/x", "private"},
		{"https://mixed.example/x", "loopback"},
		{"https://metadata.google/x", "link-local"},
		{"https://nowhere.example/x", "does not resolve"},
	}
	for _, tt := range tests {
		err := checkTarget(t.Context(), tt.url, r)
		var ve *ValidationError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("checkTarget(%s) = %v, want accepted", tt.url, err)
		case tt.want != "" && (!errors.As(err, &ve) || ve.Field != "url" || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("checkTarget(%s) = %v, want a url error saying %q", tt.url, err, tt.want)
		}
	}
}

func TestClientRefusesPrivateAddresses(t *testing.T) {
	hit := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit <- struct{}{}
	}))
	defer srv.Close()

	c := newClient(5*time.Second, false)
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("the guarded client reached a loopback server")
	}
	if !errors.Is(err, errForbiddenAddr) || !strings.Contains(describe(err), "loopback") {
		t.Fatalf("error %v (%s), want the address refused as loopback", err, describe(err))
	}
	if len(hit) != 0 {
		t.Fatal("the server saw a request")
	}

	open := newClient(5*time.Second, true)
	defer open.CloseIdleConnections()
	resp, err = open.Get(srv.URL)
	if err != nil {
		t.Fatalf("with private targets allowed: %v", err)
	}
	resp.Body.Close()
}

func TestClientFollowsNoRedirect(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	c := newClient(5*time.Second, true)
	defer c.CloseIdleConnections()
	resp, err := c.Post(redirect.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || hits.Load() != 0 {
		t.Fatalf("status %d, %d requests to the redirect's target; want the 307 itself and none", resp.StatusCode, hits.Load())
	}
}
