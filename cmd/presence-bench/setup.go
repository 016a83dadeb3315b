package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverArgs are the presenced flags a spawned server gets besides the
// basic ones: what the load needs, then the user's --server-args (which
// win, coming last).
func (b *bench) serverArgs() []string {
	var args []string
	if b.cfg.Publish == publishWS && b.cfg.Changes > 0 {
		// A publisher connection sends Rate/Publishers set_status per
		// second; the default op limit is 50/s.
		per := b.cfg.Rate / float64(len(b.plan.publishers))
		args = append(args, "--ops-per-second", strconv.FormatFloat(max(50, math.Ceil(2*per)), 'f', -1, 64))
	}
	if n := connectionsNeeded(b.cfg.Conns, openFilesLimit()); n > 0 {
		args = append(args, "--max-connections", strconv.Itoa(n))
	}
	return append(args, b.cfg.ServerArgs...)
}

// connectionsNeeded is the --max-connections a spawned server needs for
// conns WebSockets and the bench's probes and REST client when its default
// (the open files limit less 100) is too low for them, as 19,900 are under
// a limit of 20,000; 0 when the default does. The server lowers it, with a
// warning, to what leaves its store room besides its refusals (19,918
// under 20,000): asking for 40 short of the limit once cost a reconnect
// storm its store.
func connectionsNeeded(conns int, nofile int) int {
	const probes = 64
	if nofile <= 0 || conns+probes <= nofile-100 {
		return 0
	}
	return min(conns+probes, nofile-40)
}

// openFilesLimit is the process's soft limit of open files, which a
// spawned server inherits; 0 if unknown.
func openFilesLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<24 {
		return 0
	}
	return int(rl.Cur)
}

func (b *bench) startServer(ctx context.Context) error {
	cfg := &b.cfg
	if !cfg.Spawn {
		b.srv = &serverProc{BaseURL: strings.TrimRight(cfg.URL, "/"), PID: cfg.ServerPID}
		b.rep.Server = ServerInfo{URL: b.srv.BaseURL, PID: cfg.ServerPID}
		b.rest = newRESTClient(b.srv.BaseURL, cfg.AdminToken, 4)
		if cfg.ServerPID == 0 {
			b.note("no --server-pid: server RSS, CPU and CPU list are not measured")
		}
		b.recordServerCPUs(ctx)
		return nil
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = "pb_" + randomHex(16)
	}
	if cfg.JWTSecret == "" {
		cfg.JWTSecret = randomHex(32)
	}
	if cfg.PresencedBin == "" {
		bin := filepath.Join(b.tmp, "presenced")
		b.logf("building presenced (go build ./cmd/presenced)")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/presenced/presenced/cmd/presenced")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("presence-bench: go build presenced (run from the module, or pass --presenced): %v\n%s", err, out)
		}
		cfg.PresencedBin = bin
	}
	if fi, err := os.Stat(b.serverLog()); err == nil {
		b.logOffset = fi.Size()
	}
	if cfg.Nodes > 1 {
		if err := b.startCluster(ctx); err != nil {
			return err
		}
		b.recordServerCPUs(ctx)
		return nil
	}
	b.logf("starting presenced")
	srv, cold, err := spawnServer(ctx, b.spawnConfig())
	if err != nil {
		return err
	}
	b.srv = srv
	b.rep.Server = ServerInfo{URL: srv.BaseURL, PID: srv.PID, Spawned: true, Args: redactArgs(srv.args), ColdStartMs: ms(cold)}
	b.rest = newRESTClient(srv.BaseURL, cfg.AdminToken, 4)
	b.recordServerCPUs(ctx)
	return nil
}

// startCluster spawns cfg.Nodes nodes at once (none is ready before a
// majority of them has formed JetStream) and makes node 0 the server that
// imports, publishes and is profiled. The ports are picked free a moment
// before the nodes bind them, and another process may take one first: a
// node that finds its port taken fails its start at once, and the cluster
// is started again, on other ports and in new data directories.
func (b *bench) startCluster(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := b.tryStartCluster(ctx, attempt)
		if err == nil || attempt == 3 || ctx.Err() != nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		b.logf("a node's port was taken before it bound it; starting the cluster again on other ports")
	}
}

// clusterAddr picks a route address (a variable for tests).
var clusterAddr = freeLoopbackAddr

func (b *bench) tryStartCluster(ctx context.Context, attempt int) error {
	n := b.cfg.Nodes
	routes := make([]string, n)
	for i := range routes {
		a, err := clusterAddr()
		if err != nil {
			return err
		}
		routes[i] = a
	}
	b.logf("starting %d presenced nodes as one cluster", n)
	nodes := make([]*serverProc, n)
	colds := make([]time.Duration, n)
	errs := make([]error, n)
	// A node that fails ends the others' wait: they would wait for it.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		sc := b.spawnConfig()
		sc.DataDir = filepath.Join(b.tmp, fmt.Sprintf("data-n%d", i))
		if attempt > 1 {
			sc.DataDir += fmt.Sprintf("-%d", attempt)
		}
		if i > 0 {
			sc.PprofAddr = "" // profiles are node 0's
			sc.LogPath = filepath.Join(b.tmp, fmt.Sprintf("presenced-n%d.log", i))
		}
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, "nats-route://"+r)
			}
		}
		// Loopback only: the routes need no password.
		sc.Args = append([]string{"--node-name", fmt.Sprintf("%s-n%d", b.cfg.Prefix, i),
			"--cluster-name", b.cfg.Prefix, "--cluster-listen", routes[i], "--cluster-insecure",
			"--routes", strings.Join(others, ",")}, sc.Args...)
		wg.Go(func() {
			nodes[i], colds[i], errs[i] = spawnServer(sctx, sc)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range nodes {
			_ = s.stop(context.Background())
		}
		return err
	}
	b.srv, b.others = nodes[0], nodes[1:]
	b.rep.Server = ServerInfo{URL: b.srv.BaseURL, PID: b.srv.PID, Spawned: true, Args: redactArgs(b.srv.args),
		ColdStartMs: ms(slices.Max(colds))}
	for _, s := range nodes {
		b.rep.Server.Nodes = append(b.rep.Server.Nodes, NodeInfo{URL: s.BaseURL, PID: s.PID})
	}
	b.rest = newRESTClient(b.srv.BaseURL, b.cfg.AdminToken, 4)
	b.note("%d nodes: server CPU and RSS are the sums over the nodes; the Go heap, stack, fan-out and counter figures are node 0's (its connections: every %dth)", n, n)
	return nil
}

// nodes are the servers under test: the one, or every node of a cluster.
func (b *bench) nodes() []*serverProc {
	if b.srv == nil {
		return nil
	}
	return append([]*serverProc{b.srv}, b.others...)
}

// clusterURLs are the base URLs of a cluster's nodes, which connection i
// dials the one at i mod len of; nil for one server.
func (b *bench) clusterURLs() []string {
	if len(b.others) == 0 {
		return nil
	}
	var out []string
	for _, s := range b.nodes() {
		out = append(out, s.BaseURL)
	}
	return out
}

// nodeRSS is the RSS of each node, 0 where unknown.
func (b *bench) nodeRSS() []int64 {
	var out []int64
	for _, s := range b.nodes() {
		v, _ := procRSS(s.PID)
		out = append(out, v)
	}
	return out
}

// recordServerCPUs puts in the report the CPUs the server may run on and
// its GOMAXPROCS, and notes when they are not what --server-cpus asked.
func (b *bench) recordServerCPUs(ctx context.Context) {
	si := &b.rep.Server
	si.CPUs, si.Pinned, si.GOMAXPROCS = "", len(b.cfg.ServerCPUs) > 0, 0
	if b.srv.PID > 0 {
		l, err := procCPUsAllowed(b.srv.PID)
		if err != nil {
			b.note("server CPUs not known: %v", err)
		}
		si.CPUs = l
	}
	if m, err := b.rest.scrapeMetrics(ctx); err == nil {
		if v, ok := m.lookup("go_sched_gomaxprocs_threads"); ok {
			si.GOMAXPROCS = int(v)
		}
	}
	if want := b.cfg.ServerCPUs.String(); si.Pinned && si.CPUs != "" && si.CPUs != want {
		b.note("--server-cpus %s: the server may run on CPUs %s (the kernel drops CPUs that are offline or not allowed)", want, si.CPUs)
	}
}

func (b *bench) spawnConfig() spawnConfig {
	return spawnConfig{Bin: b.cfg.PresencedBin, DataDir: filepath.Join(b.tmp, "data"), AdminToken: b.cfg.AdminToken,
		JWTSecret: b.cfg.JWTSecret, PprofAddr: b.cfg.PprofAddr, Args: b.serverArgs(),
		LogPath: b.serverLog(), CPUs: b.cfg.ServerCPUs}
}

// serverLog is where the spawned server's output goes: --server-log, or
// a file in the temporary directory.
func (b *bench) serverLog() string {
	if b.cfg.ServerLog != "" {
		return b.cfg.ServerLog
	}
	return filepath.Join(b.tmp, "presenced.log")
}

// scanServerLog counts the warnings and errors a spawned server logged
// (JSON lines) from offset on, by message.
func scanServerLog(path string, offset int64) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Level, Msg, Error string
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		// net/http's accept errors come through a standard logger, at
		// info level.
		if line.Level != "warn" && line.Level != "error" && !strings.Contains(line.Msg, "error") {
			continue
		}
		key := line.Level + ": " + line.Msg
		if line.Error != "" {
			key += ": " + line.Error
		}
		key = addrPattern.ReplaceAllString(key, "ADDR")
		if len(key) > 200 {
			key = key[:200]
		}
		if _, ok := out[key]; ok || len(out) < 20 {
			out[key]++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// redactArgs hides the values of secret flags.
func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "--admin-token" || out[i] == "--jwt-secret" {
			out[i+1] = "…"
		}
	}
	return out
}

// importTopology creates the users, groups and members with one NDJSON
// import.
func (b *bench) importTopology(ctx context.Context) error {
	b.logf("importing %d users in %d groups", b.plan.Users(), b.plan.NumGroups())
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(b.plan.writeImport(pw)) }()
	start := time.Now()
	body, err := b.rest.do(ctx, http.MethodPost, "/v1/import", pr)
	_ = pr.Close()
	if err != nil {
		return fmt.Errorf("presence-bench: import: %w", err)
	}
	b.rep.Setup.ImportMs = ms(time.Since(start))
	var rep struct {
		Lines, Failed int
		Errors        []struct {
			Line    int
			Message string
		}
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("presence-bench: import report: %w", err)
	}
	if rep.Failed > 0 {
		msg := ""
		if len(rep.Errors) > 0 {
			msg = fmt.Sprintf(": line %d: %s", rep.Errors[0].Line, rep.Errors[0].Message)
		}
		return fmt.Errorf("presence-bench: import: %d of %d lines failed%s", rep.Failed, rep.Lines, msg)
	}
	return nil
}

// coldStarts restarts the spawned server ColdStarts times on its data
// directory (now holding the imported topology) and times each start.
func (b *bench) coldStarts(ctx context.Context) error {
	cs := &ColdStartInfo{FirstRunMs: b.rep.Server.ColdStartMs}
	for i := range b.cfg.ColdStarts {
		if err := b.srv.stop(ctx); err != nil {
			return err
		}
		b.logf("cold start %d of %d", i+1, b.cfg.ColdStarts)
		srv, d, err := spawnServer(ctx, b.spawnConfig())
		if err != nil {
			b.srv = nil
			return err
		}
		b.srv = srv
		cs.RestartsMs = append(cs.RestartsMs, ms(d))
	}
	b.rest.close()
	b.rest = newRESTClient(b.srv.BaseURL, b.cfg.AdminToken, 4)
	b.rep.Server.PID = b.srv.PID
	b.recordServerCPUs(ctx)
	sorted := slices.Clone(cs.RestartsMs)
	slices.Sort(sorted)
	cs.MinMs, cs.MaxMs, cs.MedianMs = sorted[0], sorted[len(sorted)-1], sorted[len(sorted)/2]
	b.rep.ColdStart = cs
	return nil
}

// serverCPU is the CPU time of the server, of every node for a cluster.
func (b *bench) serverCPU() float64 {
	var sum time.Duration
	for _, s := range b.nodes() {
		if d, err := procCPU(s.PID); err == nil {
			sum += d
		}
	}
	return sum.Seconds()
}

// serverRSS is the server's RSS, the sum of every node's for a cluster.
func (b *bench) serverRSS() int64 {
	var sum int64
	for _, v := range b.nodeRSS() {
		sum += v
	}
	return sum
}

// gcServer makes the server collect garbage through pprof, when it can,
// so that heap figures compare like with like.
func (b *bench) gcServer(ctx context.Context) {
	if b.cfg.PprofAddr != "" {
		_ = saveProfile(ctx, b.cfg.PprofAddr, "/debug/pprof/heap?gc=1", filepath.Join(b.tmp, "gc.pb.gz"))
	}
}

func (b *bench) profile(ctx context.Context, name, path string) {
	if b.cfg.ProfileDir == "" {
		return
	}
	file := filepath.Join(b.cfg.ProfileDir, fmt.Sprintf("%s-%s.pb.gz", b.cfg.label(), name))
	if err := saveProfile(ctx, b.cfg.PprofAddr, path, file); err != nil {
		b.rep.Errors = append(b.rep.Errors, fmt.Sprintf("profile %s: %v", name, err))
		return
	}
	b.rep.Profiles = append(b.rep.Profiles, file)
}

// phaseProfile starts a CPU profile of the server over the first
// ProfileSeconds of a phase; the returned function waits for it.
func (b *bench) phaseProfile(ctx context.Context, name string) (wait func()) {
	if b.cfg.ProfileDir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		b.profile(ctx, name, fmt.Sprintf("/debug/pprof/profile?seconds=%d", b.cfg.ProfileSeconds))
	})
	return wg.Wait
}
