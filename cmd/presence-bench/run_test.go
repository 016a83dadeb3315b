package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildPresenced builds the real server once per test binary run.
var buildPresenced = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "presence-bench-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "presenced")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/presenced/presenced/cmd/presenced").CombinedOutput()
	if err != nil {
		return "", &buildError{err, out}
	}
	return bin, nil
})

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

func presencedBin(t *testing.T) string {
	t.Helper()
	bin, err := buildPresenced()
	if err != nil {
		t.Fatalf("go build presenced: %v", err)
	}
	return bin
}

// removePresenced deletes the binary built by buildPresenced, if any.
func removePresenced() {
	if bin, err := buildPresenced(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
}

// logWriter sends progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunREST runs a tiny scenario end to end through the command line,
// against a spawned presenced and one worker process: 50 connections in
// one group, 20 changes over REST, a snapshot probe, a final-state check
// and a reconnect storm. It reads the figures back from the JSON report.
func TestRunREST(t *testing.T) {
	bin := presencedBin(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	args := []string{"--spawn", "--presenced", bin, "--groups", "1x50", "--rate", "20", "--changes", "20",
		"--settle", "100ms", "--snapshot-probes", "5", "--verify", "--reconnect",
		"--target-connect", "1m", "--target-p99", "1m", "--target-reconnect", "1m", "--json", jsonPath}
	var stdout bytes.Buffer
	if code := cli(context.Background(), args, &stdout, logWriter{t}); code != 0 {
		t.Fatalf("exit code %d\n%s", code, stdout.String())
	}
	rep := readReport(t, jsonPath)
	if c := rep.Connect; c.Connected != 50 || c.Subscribed != 50 || c.Failed != 0 || c.AllReadyMs <= 0 {
		t.Fatalf("connect: %+v", c)
	}
	d := rep.Delivery
	if d.Publish.Accepted != 20 || d.Expected != 20*50 || d.Delivered != d.Expected || d.Latency.Count != d.Delivered {
		t.Fatalf("delivery: accepted %d, delivered %d of %d, latency n=%d", d.Publish.Accepted, d.Delivered, d.Expected, d.Latency.Count)
	}
	if d.Changes != (ChangeCounts{Full: 20}) {
		t.Fatalf("changes by reach: %+v", d.Changes)
	}
	if d.Stray != 0 || d.Frames == 0 || d.Latency.P50 <= 0 || d.Latency.Max < d.Latency.P99 || d.ServerDeltasOut < float64(d.Delivered) {
		t.Fatalf("delivery: %+v", d)
	}
	// 20 publishers, each seen by the 50 subscribers of the group.
	if v := d.Verify; v == nil || v.Total != 20*50 || v.Match != v.Total {
		t.Fatalf("verify: %+v", d.Verify)
	}
	// Goroutines are counted, not compared: an idle connection has none.
	if m := rep.Memory; m.BaselineRSS <= 0 || m.ConnectedRSS <= 0 || m.ClientRSS <= 0 || m.GoroutinesBef <= 0 || m.GoroutinesAft <= 0 {
		t.Fatalf("memory: %+v", m)
	}
	if s := rep.Snapshot; s == nil || s.Members != 50 || s.WS.Count != 5 || s.REST.Count != 5 || s.Bytes < 50*40 {
		t.Fatalf("snapshot: %+v", s)
	}
	if r := rep.Reconnect; r == nil || r.Subscribed != 50 || r.Resumed != 50 || r.Failed != 0 {
		t.Fatalf("reconnect: %+v", rep.Reconnect)
	}
	if len(rep.Targets) != 3 {
		t.Fatalf("targets: %+v", rep.Targets)
	}
	for _, tr := range rep.Targets {
		if !tr.Pass {
			t.Errorf("target missed: %+v", tr)
		}
	}
	if rep.Command != "presence-bench "+strings.Join(args, " ") || rep.Machine.CPUs == 0 || rep.Server.PID == 0 {
		t.Fatalf("report header: %q %+v %+v", rep.Command, rep.Machine, rep.Server)
	}
	// Not pinned: each side has the CPUs it was given.
	if rep.Machine.BenchCPUs == "" || rep.Machine.BenchPinned || rep.Machine.BenchGOMAXPROCS == 0 ||
		rep.Server.CPUs == "" || rep.Server.Pinned {
		t.Fatalf("CPUs: machine %+v server %+v", rep.Machine, rep.Server)
	}
	// The server's fan-out: 50 users coming online while connecting, 20
	// changes to 50 subscribers each.
	if f := rep.Connect.Fanout; f == nil || f.StatusChanges < 50 || f.FramesOut < 50 || f.Seconds <= 0 {
		t.Fatalf("connect fan-out: %+v", f)
	}
	if f := d.Fanout; f == nil || f.StatusChanges != 20 || f.FramesOut < 20 || f.FramesOut != d.ServerFramesOut ||
		f.FramesPerChange != f.FramesOut/f.StatusChanges || f.DeltasOut != d.ServerDeltasOut {
		t.Fatalf("delivery fan-out: %+v", f)
	}
	if rep.Reconnect.Fanout != nil {
		t.Fatal("fan-out of the reconnect storm")
	}
	for i, a := range rep.Server.Args {
		if (a == "--jwt-secret" || a == "--admin-token") && rep.Server.Args[i+1] != "…" {
			t.Fatalf("%s not redacted: %q", a, rep.Server.Args)
		}
	}
	for _, want := range []string{"connect", "server memory", "snapshot of the largest group", "status changes",
		"delivered / expected", "1000 / 1000", "reconnect storm", "targets", "PASS", "bench CPUs", "server CPUs",
		"fan-out (server)", "frames per change", "fan-out window, max"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
}

// readReport decodes a JSON report strictly and checks it has the
// sections of a run with status changes.
func readReport(t *testing.T, path string) Report {
	t.Helper()
	rep, raw := decodeReport(t, path)
	if rep.Delivery == nil || rep.Connect == nil || rep.Memory == nil {
		t.Fatalf("report JSON lacks sections:\n%s", raw)
	}
	return rep
}

// decodeReport decodes a JSON report strictly.
func decodeReport(t *testing.T, path string) (Report, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	return rep, raw
}

// TestRunJoin runs the join10k preset with a group of 200: every member
// dialled at once, each subscribing on its hello, until every subscriber
// sees all 200 present (it takes well under a second; the bound is 30s).
func TestRunJoin(t *testing.T) {
	bin := presencedBin(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	args := []string{"--scenario", "join10k", "--presenced", bin, "--groups", "1x200", "--settle", "100ms",
		"--converge-timeout", "30s", "--target-converge", "1m", "--json", jsonPath}
	var stdout bytes.Buffer
	if code := cli(context.Background(), args, &stdout, logWriter{t}); code != 0 {
		t.Fatalf("exit code %d\n%s", code, stdout.String())
	}
	rep, raw := decodeReport(t, jsonPath)
	if c := rep.Connect; c == nil || c.Split || c.Connected != 200 || c.Subscribed != 200 || c.Failed != 0 {
		t.Fatalf("connect: %+v", rep.Connect)
	}
	cv := rep.Converge
	if cv == nil {
		t.Fatalf("no convergence in the report:\n%s", raw)
	}
	if cv.Members != 200 || cv.Subscribers != 200 || cv.TimeoutMs != 30000 {
		t.Fatalf("convergence: %+v", cv)
	}
	// A subscriber short of members with its connection open lost a
	// delta (or the snapshot missed a member): a server fault, which
	// is what this scenario is there to catch.
	if cv.Converged != 200 || cv.NotConverged != 0 {
		t.Fatalf("%d of 200 subscribers did not converge (%d of them open, short of members: the fewest one saw present was %d of 200)\n%s",
			cv.NotConverged, cv.NotConverged-cv.Ended, cv.FewestSeen, stdout.String())
	}
	// The last convergence is the slowest connection's; none converges
	// before its own hello.
	if cv.Times.Count != 200 || cv.AllConvergedMs <= 0 || cv.AllConvergedMs != cv.Times.Max ||
		cv.Times.Min < rep.Connect.Hello.Min || cv.Times.P50 > cv.Times.P99 {
		t.Fatalf("convergence times: %+v (hello %+v)", cv, rep.Connect.Hello)
	}
	if cv.Open != 200 || len(cv.Closed) != 0 || cv.SlowConsumers != 0 {
		t.Fatalf("connections: %d open, closed %v, %.0f slow consumers", cv.Open, cv.Closed, cv.SlowConsumers)
	}
	if cv.Hello.Count != 200 || cv.Handshake.Count != 200 || cv.Hello.P99 <= 0 {
		t.Fatalf("hello: %+v, handshake %+v", cv.Hello, cv.Handshake)
	}
	// 200 users came online and were fanned out to the subscribers
	// already there.
	if f := cv.Fanout; f == nil || f.StatusChanges < 200 || f.DeltasOut <= 0 || f.FramesPerChange <= 0 || f.Seconds <= 0 {
		t.Fatalf("fan-out: %+v", cv.Fanout)
	}
	if rep.Delivery != nil || rep.Snapshot != nil || rep.Reconnect != nil {
		t.Fatal("phases that were not asked for ran")
	}
	if len(rep.Targets) != 1 || !rep.Targets[0].Pass || !strings.Contains(rep.Targets[0].Name, "converged") {
		t.Fatalf("targets: %+v", rep.Targets)
	}
	for _, want := range []string{"convergence", "subscribers converged", "200 / 200", "converged within",
		"per connection (from start)", "start → hello", "dial → hello", "frames per change", "PASS"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestRunWebSocketPublisher spreads connections over two worker processes
// and several source addresses, connects them all before subscribing any,
// makes the changes with set_status over publisher WebSockets, and
// restarts the server once to time cold start.
func TestRunWebSocketPublisher(t *testing.T) {
	bin := presencedBin(t)
	// The server runs on one CPU from its first start and after the
	// restart; the bench keeps the CPUs it has.
	cpus := allowedCPUs(t)
	server := cpus[:1]
	cfg := Config{Spawn: true, PresencedBin: bin, Groups: []GroupSpec{{2, 30}}, Subscribers: 20, Workers: 2, PerSource: 16,
		Rate: 40, Changes: 20, Publish: publishWS, Publishers: 4, Settle: 100 * time.Millisecond, SnapshotProbes: -1,
		ColdStarts: 1, SplitSubscribe: true, ServerArgs: []string{"--coalesce", "5ms"}, ServerCPUs: server, BenchCPUs: cpus}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, nil, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Setup.Sources != 4 || rep.Setup.Workers != 2 || rep.Setup.Subscriptions != 40 {
		t.Fatalf("setup: %+v", rep.Setup)
	}
	if c := rep.Connect; c.Connected != 60 || c.Subscribed != 40 || !c.Split || c.Subscribe.Count != 40 || c.AllReadyMs <= 0 {
		t.Fatalf("connect: %+v", c)
	}
	d := rep.Delivery
	if d.Publish.Mode != publishWS || d.Publish.Accepted != 20 || d.Expected != 20*20 || d.Delivered != d.Expected {
		t.Fatalf("delivery: %+v, publish %+v", d, d.Publish)
	}
	if cs := rep.ColdStart; cs == nil || len(cs.RestartsMs) != 1 || cs.FirstRunMs <= 0 || cs.MinMs <= 0 {
		t.Fatalf("cold start: %+v", rep.ColdStart)
	}
	if rep.Server.CPUs != server.String() || !rep.Server.Pinned ||
		(rep.Server.GOMAXPROCS != 1 && os.Getenv("GOMAXPROCS") == "") ||
		rep.Machine.BenchCPUs != cpus.String() || !rep.Machine.BenchPinned {
		t.Fatalf("CPUs: server %+v machine %+v", rep.Server, rep.Machine)
	}
	if rep.Snapshot != nil || rep.Reconnect != nil {
		t.Fatal("phases that were not asked for ran")
	}
}

// TestRunCluster spreads the connections over three nodes of one cluster:
// the changes made through node 0 reach every node's subscribers, and the
// report gives each node's latency and memory.
func TestRunCluster(t *testing.T) {
	bin := presencedBin(t)
	cfg := Config{Spawn: true, PresencedBin: bin, Nodes: 3, Groups: []GroupSpec{{1, 31}}, Rate: 20, Changes: 10,
		Settle: 100 * time.Millisecond, SnapshotProbes: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, nil, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Server.Nodes) != 3 || rep.Server.Nodes[0].PID != rep.Server.PID {
		t.Fatalf("nodes: %+v", rep.Server)
	}
	if c := rep.Connect; c.Connected != 31 || c.Subscribed != 31 || c.Failed != 0 {
		t.Fatalf("connect: %+v", c)
	}
	m := rep.Memory
	if len(m.Nodes) != 3 || m.Nodes[0].Conns != 11 || m.Nodes[1].Conns != 10 || m.Nodes[2].Conns != 10 {
		t.Fatalf("memory: %+v", m.Nodes)
	}
	for i, n := range m.Nodes {
		if n.BaselineRSS <= 0 || n.ConnectedRSS <= 0 {
			t.Errorf("node %d: RSS not measured: %+v", i, n)
		}
	}
	d := rep.Delivery
	if d.Publish.Accepted != 10 || d.Expected != 10*31 || d.Delivered != d.Expected {
		t.Fatalf("delivery: %+v, publish %+v", d, d.Publish)
	}
	if len(d.NodeLatency) != 3 || d.NodeLatency[0].Count != 10*11 || d.NodeLatency[1].Count != 10*10 || d.NodeLatency[2].Count != 10*10 {
		t.Fatalf("latency by node: %+v", d.NodeLatency)
	}
}

// TestSplitHoldAnswersPings holds the connections of a split connect idle
// for twice the server's idle timeout before they subscribe. They must
// answer the server's pings meanwhile, as clients do; before, they were
// not read until they subscribed and the server closed them as idle.
func TestSplitHoldAnswersPings(t *testing.T) {
	bin := presencedBin(t)
	cfg := Config{Spawn: true, PresencedBin: bin, Groups: []GroupSpec{{1, 20}}, SplitSubscribe: true, SplitHold: 3 * time.Second,
		Settle: 100 * time.Millisecond, SnapshotProbes: -1, ServerArgs: []string{"--idle-timeout", "1500ms"}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, nil, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Connect; c.Connected != 20 || c.Subscribed != 20 || c.Failed != 0 {
		t.Fatalf("connect: %+v", c)
	}
}

func TestClassifyChanges(t *testing.T) {
	// One group of 3 subscribers, 2 publishers: changes 0, 2, 4 are one
	// user's, 1, 3, 5 the other's.
	p, err := newPlan(Topology{Prefix: "c-", Groups: []GroupSpec{{1, 3}}, Conns: 3, Publishers: 2})
	if err != nil {
		t.Fatal(err)
	}
	pres := &publishResult{ok: []bool{true, true, true, true, false, true}}
	perSeq := []uint64{3, 0, 0, 2, 0, 0}
	// 0 full; 1 none, but 3 (its user's next) arrived: superseded; 2 none
	// and 4 was not delivered either; 3 partial; 4 not accepted; 5 none
	// with no successor.
	got := classifyChanges(p, pres, perSeq)
	want := ChangeCounts{Full: 1, Superseded: 1, None: 2, Partial: 1, Missing: 1}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestRunRESTBatches publishes in batches: 25 changes in batches of 10
// (the last one short), every one accepted, delivered and verified.
func TestRunRESTBatches(t *testing.T) {
	bin := presencedBin(t)
	cfg := Config{Spawn: true, PresencedBin: bin, Groups: []GroupSpec{{1, 20}}, Rate: 100, Changes: 25,
		Publishers: 5, PublishBatch: 10, PublishConns: 2, Verify: true, Settle: 100 * time.Millisecond, SnapshotProbes: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, nil, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Delivery
	if d.Publish.Sent != 25 || d.Publish.Accepted != 25 || d.Publish.Ack.Count != 25 || d.Publish.SendLag.Count != 25 {
		t.Fatalf("publish: %+v", d.Publish)
	}
	if v := d.Verify; v == nil || v.Total != 5*20 || v.Match != v.Total {
		t.Fatalf("verify: %+v", d.Verify)
	}
	if d.Delivered == 0 || d.Stray != 0 {
		t.Fatalf("delivery: %+v", d)
	}
}

// TestRunProfiles asks for profiles into a directory that does not exist
// yet: every profile the report names is written, the workers' own among
// them, although the workers start before the server's first profile.
func TestRunProfiles(t *testing.T) {
	bin := presencedBin(t)
	dir := filepath.Join(t.TempDir(), "prof", "run")
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	args := []string{"--spawn", "--presenced", bin, "--groups", "1x20", "--changes", "0", "--settle", "100ms",
		"--pprof-addr", freeAddr(t), "--profile-dir", dir, "--profile-seconds", "1", "--json", jsonPath}
	var stdout bytes.Buffer
	if code := cli(context.Background(), args, &stdout, logWriter{t}); code != 0 {
		t.Fatalf("exit code %d\n%s", code, stdout.String())
	}
	rep, _ := decodeReport(t, jsonPath)
	workers := 0
	for _, p := range rep.Profiles {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() == 0 {
			t.Errorf("profile %s named in the report: %v", p, err)
		}
		if strings.Contains(p, "-worker") {
			workers++
		}
	}
	if workers == 0 {
		t.Fatalf("no worker profile among %q", rep.Profiles)
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRunClusterPortTaken gives one node of a cluster a route port another
// process holds, as happens when a port picked free is taken before the
// node binds it: the run must start the cluster again on other ports and
// complete. Before, the run failed after a minute ("no WebSocket after
// 1m0s"), the other nodes waiting for the missing one.
func TestRunClusterPortTaken(t *testing.T) {
	bin := presencedBin(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var once sync.Once
	clusterAddr = func() (string, error) {
		addr := ""
		once.Do(func() { addr = taken.Addr().String() })
		if addr != "" {
			return addr, nil
		}
		return freeLoopbackAddr()
	}
	defer func() { clusterAddr = freeLoopbackAddr }()
	cfg := Config{Spawn: true, PresencedBin: bin, Nodes: 3, Groups: []GroupSpec{{1, 6}}, Rate: 20, Changes: 2,
		Settle: 100 * time.Millisecond, SnapshotProbes: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, nil, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Server.Nodes) != 3 || rep.Connect.Subscribed != 6 {
		t.Fatalf("nodes %+v, connect %+v", rep.Server.Nodes, rep.Connect)
	}
}
