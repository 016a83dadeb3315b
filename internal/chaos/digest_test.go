package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDigest reads logs in the formats nats-server and presenced write:
// the presence stream's new leader and a warning after the fault, not
// before it and not the route errors; a node's last warning that is not a
// refused request.
func TestDigest(t *testing.T) {
	dir := t.TempDir()
	nats := filepath.Join(dir, "nats1.log")
	node := filepath.Join(dir, "n1.log")
	write := func(path string, lines ...string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(nats,
		"=== 2026-12-06T14:28:56.801654075Z start nats-server",
		"[8216] 2026/12/06 14:28:58.694975 [INF] JetStream cluster new stream leader for '$G > KV_presenced_presence'",
		"[8216] 2026/12/06 14:29:02.000000 [ERR] Error trying to connect to route (attempt 3): dial tcp 10.77.0.13:6222: connect: connection refused",
		"[8216] 2026/12/06 14:29:03.000000 [WRN] Catchup for stream '$G > KV_presenced_presence' stalled",
		"[8216] 2026/12/06 14:29:03.500000 [WRN] Catchup for stream '$G > KV_presenced_presence' stalled",
		"[8216] 2026/12/06 14:29:05.500000 [INF] JetStream cluster new stream leader for '$G > KV_presenced_presence'",
	)
	write(node,
		`{"level":"warn","ts":1796567341.0,"caller":"presence/availability.go:104","msg":"presence: unavailable","node":"n1","error":"presence: the store takes no writes for 12.5s"}`,
		`{"level":"warn","ts":1796567342.0,"caller":"broker/httpapi.go:86","msg":"request failed: store unavailable","node":"n1","path":"/v1/ws","error":"unavailable"}`,
		`{"level":"warn","ts":1796567342.5,"logger":"nats","msg":"Plaintext passwords detected","node":"n1"}`,
	)
	from := time.Date(2026, 12, 6, 14, 29, 1, 0, time.Local)
	got := natsDigest("nats1", nats, from)
	want := []string{
		"nats1 took the presence stream's lead at +4.5s",
		"nats1 +2.0s WRN Catchup for stream '$G > KV_presenced_presence' stalled",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nats digest:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := natsDigest("nats1", nats, from.Add(time.Minute)); len(got) != 1 || !strings.Contains(got[0], "never took") {
		t.Errorf("digest after every leader change: %q", got)
	}
	if w := lastWarning(node); !strings.HasSuffix(w, "presence: unavailable: presence: the store takes no writes for 12.5s") {
		t.Errorf("last warning %q", w)
	}

	// A heal's cost, as a node's log shows it.
	healed := filepath.Join(dir, "n2.log")
	write(healed,
		`{"level":"warn","ts":1796567340.0,"caller":"presence/availability.go:114","msg":"presence: unavailable","node":"n2","error":"before the fault"}`,
		`{"level":"warn","ts":1796567342.0,"caller":"presence/availability.go:114","msg":"presence: unavailable","node":"n2","error":"cut off"}`,
		`{"level":"warn","ts":1796567361.5,"logger":"nats","caller":"broker/nats.go:395","msg":"RAFT [fjFyEjc1 - _meta_] Detected another leader with higher term, will stepdown","node":"n2"}`,
		`{"level":"warn","ts":1796567362.0,"logger":"nats","caller":"broker/nats.go:395","msg":"RAFT [fjFyEjc1 - S-R3F-2blIVj37] Detected another leader with higher term, will stepdown","node":"n2"}`,
		`{"level":"info","ts":1796567370.0,"caller":"presence/availability.go:48","msg":"presence available again","node":"n2"}`,
		`{"level":"info","ts":1796567370.0,"caller":"presence/availability.go:48","msg":"presence: available again","node":"n2","was":"cut off"}`,
	)
	fault := time.Unix(1796567341, 0)
	got = nodeDigest("n2", healed, fault)
	want = []string{
		"n2 store: unavailable +1.0s, available again +29.0s",
		"n2 NATS: 2 RAFT leaders stepped down for a higher term, the first at +20.5s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("node digest:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var tl Timeline
	tl.marks = []mark{{fault.Add(-time.Second), "n2", markStart}, {fault, "n2", markCut}, {fault.Add(20 * time.Second), "n2", markHeal}}
	if got := tl.faults(fault); len(got) != 1 || got[0] != "timeline: n2 cut +0.0s, n2 heal +20.0s" {
		t.Errorf("timeline %q", got)
	}
}
