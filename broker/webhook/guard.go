package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// resolveTimeout bounds the look-up of a target's host at registration.
const resolveTimeout = 5 * time.Second

// errForbiddenAddr is a target address outside the public internet,
// refused unless private targets are allowed. It is wrapped with the
// address and its range.
var errForbiddenAddr = errors.New("address not allowed as a webhook target")

// Ranges refused besides what netip classifies (loopback, private,
// link-local, multicast, unspecified). Each is either not routable on the
// internet or reaches a provider's internal services, such as the
// metadata endpoint some clouds serve on 100.100.100.200.
var extraForbidden = []struct {
	prefix netip.Prefix
	name   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

// Prefixes that embed an IPv4 address, which is checked in turn: a NAT64
// or 6to4 address of 127.0.0.1 must not pass for a public one.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// forbiddenRange names the non-public range ip is in, or returns "" for an
// address on the public internet.
func forbiddenRange(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	}
	for _, r := range extraForbidden {
		if r.prefix.Contains(ip) {
			return r.name
		}
	}
	if ip.Is6() {
		b := ip.As16()
		var v4 [4]byte
		switch {
		case nat64Prefix.Contains(ip):
			copy(v4[:], b[12:16])
		case sixToFour.Contains(ip):
			copy(v4[:], b[2:6])
		default:
			return ""
		}
		if r := forbiddenRange(netip.AddrFrom4(v4)); r != "" {
			return r + " (embedded in IPv6)"
		}
	}
	return ""
}

// checkAddr returns an error wrapping errForbiddenAddr when ip is not a
// public address.
func checkAddr(ip netip.Addr) error {
	if r := forbiddenRange(ip); r != "" {
		return fmt.Errorf("%w: %s is %s", errForbiddenAddr, ip.Unmap(), r)
	}
	return nil
}

// checkTarget resolves the host of the webhook URL raw and refuses it when
// any of its addresses is not public. Every address counts: a name that
// resolves to a public and a private address could be dialed on either.
func checkTarget(ctx context.Context, raw string, r Resolver) error {
	bad := func(msg string) error { return &ValidationError{Field: "url", Message: msg} }
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := checkAddr(ip); err != nil {
			return bad(err.Error() + "; private targets are not allowed on this server")
		}
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupIPAddr(lctx, host)
	if err != nil || len(addrs) == 0 {
		if ctx.Err() != nil { // the caller gave up, the host is not at fault
			return ctx.Err()
		}
		return bad("host " + host + " does not resolve")
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return bad("host " + host + " resolves to an invalid address")
		}
		if err := checkAddr(ip); err != nil {
			return bad("host " + host + " resolves to " + err.Error() + "; private targets are not allowed on this server")
		}
	}
	return nil
}

// dialControl is a net.Dialer Control that refuses connections to
// non-public addresses. It sees the address actually dialed, after name
// resolution, so a name that resolved to a public address at registration
// and to a private one now (DNS rebinding) is refused too.
func dialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", errForbiddenAddr, address)
	}
	return checkAddr(ap.Addr())
}
