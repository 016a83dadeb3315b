package natstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FreePorts returns n distinct loopback ports that were free a moment ago,
// for servers a test starts, and starts again, on ports it names (routes,
// a NATS client port a process is told).
//
// They are drawn outside the kernel's range of ephemeral ports: a port of
// that range, free again after its server stopped, is handed to the next
// outgoing connection of any process on the machine, and the server then
// fails to listen on it again ("address already in use").
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	lo, hi := 20000, 0
	if elo, ehi := EphemeralPorts(); elo-lo >= 4096 {
		hi = elo // below the range, above the well-known services
	} else if ehi <= 65535-4096 {
		lo, hi = ehi+1, 65536
	} else {
		t.Fatalf("natstest: the ephemeral port range %d-%d leaves no room for fixed ports", elo, ehi)
	}
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("natstest: no free port in [%d, %d)", lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil || slices.Contains(ports, p) {
			continue
		}
		ln.Close()
		ports = append(ports, p)
	}
	return ports
}

// FreePort is FreePorts for one port.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// EphemeralPorts returns the kernel's range of ports for outgoing
// connections, both ends included: Linux's setting, or its default where
// it cannot be read.
func EphemeralPorts() (lo, hi int) {
	lo, hi = 32768, 60999
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}
