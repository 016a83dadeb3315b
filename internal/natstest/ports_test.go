package natstest_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/presenced/presenced/internal/natstest"
)

// TestFreePortsLieOutsideTheEphemeralRange: the cluster tests restart
// nodes on the route ports they started on. A port drawn from the kernel's
// ephemeral range and free again after a shutdown is handed to the next
// outgoing connection of any process (two test packages run at once, some
// with thousands of connections), and the restarted node then fails to
// listen: "address already in use". Route ports must come from outside
// that range.
func TestFreePortsLieOutsideTheEphemeralRange(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skip("no ephemeral port range to read:", err)
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		t.Fatalf("ip_local_port_range: %q", raw)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("ip_local_port_range: %q", raw)
	}
	for _, p := range natstest.FreePorts(t, 20) {
		if p >= lo && p <= hi {
			t.Fatalf("port %d is in the ephemeral range %d-%d", p, lo, hi)
		}
	}
}
