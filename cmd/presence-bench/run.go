package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
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
	"time"
)

// bench is one run in progress.
type bench struct {
	cfg     Config
	log     io.Writer // progress lines
	rep     *Report
	plan    *plan
	srv     *serverProc
	rest    *restClient
	workers workerPool
	tmp     string
	// nextSource is the next unused loopback source address (see
	// sourceAddr); a reconnect takes fresh ones so that ports in TIME_WAIT
	// do not get in the way.
	nextSource int
	profiles   int
	// logOffset is where this run's part of the server log starts.
	logOffset int64
}

// Run executes cfg and returns its report. The run is bounded by
// cfg.Timeout; it stops every process it started before returning. args
// are the command line, recorded in the report.
func Run(ctx context.Context, cfg Config, args []string, progress io.Writer) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	b := &bench{cfg: cfg, log: progress, rep: &Report{
		Scenario: cfg.Scenario,
		Label:    cfg.Label,
		Command:  "presence-bench " + strings.Join(args, " "),
		Started:  time.Now().UTC().Truncate(time.Second),
		Machine:  machineInfo(),
	}}
	start := time.Now()
	err = b.run(ctx)
	b.cleanup()
	if err != nil {
		b.rep.Errors = append(b.rep.Errors, err.Error())
	}
	b.rep.Seconds = time.Since(start).Seconds()
	b.rep.checkTargets(cfg.Targets)
	return b.rep, err
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "presence-bench: "+format+"\n", args...)
}

func (b *bench) note(format string, args ...any) {
	b.rep.Notes = append(b.rep.Notes, fmt.Sprintf(format, args...))
}

func (b *bench) run(ctx context.Context) error {
	cfg := b.cfg
	p, err := newPlan(Topology{Prefix: cfg.Prefix + "-", Groups: cfg.Groups, Conns: cfg.Conns,
		Subscribers: cfg.Subscribers, Publishers: cfg.Publishers})
	if err != nil {
		return err
	}
	b.plan = p
	b.rep.Setup = SetupInfo{Groups: formatGroups(cfg.Groups), Users: p.Users(), NumGroups: p.NumGroups(),
		Conns: cfg.Conns, Subscriptions: p.Subscriptions(), Workers: cfg.Workers, ImportLines: p.importLines()}
	if cfg.Changes > 0 {
		b.rep.Setup.Publishers = len(p.publishers)
	}
	if b.tmp, err = os.MkdirTemp("", "presence-bench-"); err != nil {
		return err
	}
	if err := b.startServer(ctx); err != nil {
		return err
	}
	if err := b.importTopology(ctx); err != nil {
		return err
	}
	if cfg.ColdStarts > 0 {
		if err := b.coldStarts(ctx); err != nil {
			return err
		}
	}
	if err := b.connect(ctx); err != nil {
		return err
	}
	if cfg.Hold > 0 {
		if err := b.hold(ctx); err != nil {
			return err
		}
	}
	if cfg.SnapshotProbes > 0 {
		stopProfile := b.phaseProfile(ctx, "cpu-snapshot")
		sn, err := probeSnapshot(ctx, b.srv.BaseURL, b.cfg.AdminToken, b.cfg.JWTSecret, p, cfg.SnapshotProbes)
		stopProfile()
		if err != nil {
			return err
		}
		b.rep.Snapshot = sn
	}
	if cfg.Changes > 0 {
		if err := b.deliver(ctx); err != nil {
			return err
		}
	}
	if cfg.Reconnect {
		if err := b.reconnect(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) cleanup() {
	if b.workers != nil {
		b.workers.close()
	}
	if b.rest != nil {
		b.rest.close()
	}
	if b.srv != nil && b.srv.spawned {
		if err := b.srv.stop(context.Background()); err != nil {
			b.rep.Errors = append(b.rep.Errors, err.Error())
		}
		b.rep.ServerLog = scanServerLog(b.serverLog(), b.logOffset)
	}
	if b.tmp != "" {
		_ = os.RemoveAll(b.tmp)
	}
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

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
	return append(args, b.cfg.ServerArgs...)
}

func (b *bench) startServer(ctx context.Context) error {
	cfg := &b.cfg
	if !cfg.Spawn {
		b.srv = &serverProc{BaseURL: strings.TrimRight(cfg.URL, "/"), PID: cfg.ServerPID}
		b.rep.Server = ServerInfo{URL: b.srv.BaseURL, PID: cfg.ServerPID}
		b.rest = newRESTClient(b.srv.BaseURL, cfg.AdminToken, 4)
		if cfg.ServerPID == 0 {
			b.note("no --server-pid: server RSS and CPU are not measured")
		}
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
	b.logf("starting presenced")
	srv, cold, err := spawnServer(ctx, b.spawnConfig())
	if err != nil {
		return err
	}
	b.srv = srv
	b.rep.Server = ServerInfo{URL: srv.BaseURL, PID: srv.PID, Spawned: true, Args: redactArgs(srv.args), ColdStartMs: ms(cold)}
	b.rest = newRESTClient(srv.BaseURL, cfg.AdminToken, 4)
	return nil
}

func (b *bench) spawnConfig() spawnConfig {
	return spawnConfig{Bin: b.cfg.PresencedBin, DataDir: filepath.Join(b.tmp, "data"), AdminToken: b.cfg.AdminToken,
		JWTSecret: b.cfg.JWTSecret, PprofAddr: b.cfg.PprofAddr, Args: b.serverArgs(),
		LogPath: b.serverLog()}
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
	sorted := slices.Clone(cs.RestartsMs)
	slices.Sort(sorted)
	cs.MinMs, cs.MaxMs, cs.MedianMs = sorted[0], sorted[len(sorted)-1], sorted[len(sorted)/2]
	b.rep.ColdStart = cs
	return nil
}

// sources hands out n fresh loopback source addresses.
func (b *bench) sources(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = sourceAddr(b.nextSource)
		b.nextSource++
	}
	return out
}

// share returns the connections of worker w: [first, first+count).
func (b *bench) share(w int) (first, count int) {
	n, k := b.cfg.Conns, len(b.workers)
	first = w * n / k
	return first, (w+1)*n/k - first
}

func (b *bench) serverCPU() float64 {
	d, err := procCPU(b.srv.PID)
	if err != nil {
		return 0
	}
	return d.Seconds()
}

func (b *bench) serverRSS() int64 {
	v, _ := procRSS(b.srv.PID)
	return v
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
	b.profiles++
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

// label names the run in profile file names: --label, else the
// scenario, else "custom".
func (c Config) label() string {
	switch {
	case c.Label != "":
		return c.Label
	case c.Scenario != "":
		return c.Scenario
	}
	return "custom"
}

func (b *bench) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connect starts the workers and opens every connection at once.
func (b *bench) connect(ctx context.Context) error {
	cfg := b.cfg
	// Baseline: the server with its users and groups, before any
	// connection.
	if err := b.sleep(ctx, time.Second); err != nil {
		return err
	}
	b.gcServer(ctx)
	mem := &MemoryInfo{BaselineRSS: b.serverRSS()}
	m0, _ := b.rest.scrapeMetrics(ctx)

	deadline, _ := ctx.Deadline()
	var profile func(int) string
	if cfg.ProfileDir != "" {
		profile = func(i int) string {
			f := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-worker%d-cpu.pb.gz", cfg.label(), i))
			b.rep.Profiles = append(b.rep.Profiles, f)
			return f
		}
	}
	ws, err := startWorkers(cfg.Workers, deadline, b.log, profile)
	if err != nil {
		return err
	}
	b.workers = ws
	b.logf("connecting %d connections from %d workers", cfg.Conns, len(ws))
	at := time.Now().Add(200 * time.Millisecond)
	cmds := make([]command, len(ws))
	for w := range ws {
		first, count := b.share(w)
		cmds[w] = command{Cmd: cmdConnect, Connect: &connectCommand{
			URL: b.srv.BaseURL, Secret: cfg.JWTSecret, Expires: deadline.Add(time.Hour).Unix(),
			Topology: b.plan.Topology, First: first, Count: count,
			Sources: b.sources((count + cfg.PerSource - 1) / cfg.PerSource), PerSource: cfg.PerSource,
			Parallel: cfg.DialParallel, At: at.UnixNano(), TimeoutMs: cfg.ConnectTimeout.Milliseconds(),
			Track: cfg.Verify, Split: cfg.SplitSubscribe,
		}}
	}
	b.rep.Setup.Sources = b.nextSource
	stopProfile := b.phaseProfile(ctx, "cpu-connect")
	clientPIDs := append(ws.pids(), os.Getpid())
	cpu0, ccpu0 := b.serverCPU(), cpuOf(clientPIDs...)
	replies, err := ws.call(ctx, cmds)
	if err != nil {
		stopProfile()
		return err
	}
	c := mergeConnect(replies)
	if cfg.SplitSubscribe {
		b.logf("connected %d, failed %d after %s; subscribing", c.Connected, c.Failed, fmtMs(c.AllConnectedMs))
		sc := &subscribeCommand{At: time.Now().Add(100 * time.Millisecond).UnixNano(), TimeoutMs: cfg.ConnectTimeout.Milliseconds()}
		replies, err := ws.broadcast(ctx, command{Cmd: cmdSubscribe, Subscribe: sc})
		if err != nil {
			stopProfile()
			return err
		}
		s := mergeConnect(replies)
		c.Split = true
		c.Subscribed, c.Failed, c.Subscribe, c.SnapshotBytes = s.Subscribed, c.Failed+s.Failed, s.Subscribe, s.SnapshotBytes
		c.AllReadyMs, c.Ready = s.AllReadyMs, s.Ready
		for k, v := range s.Errors {
			c.Errors[k] += v
		}
	}
	c.ServerCPU, c.ClientCPU = b.serverCPU()-cpu0, (cpuOf(clientPIDs...) - ccpu0).Seconds()
	stopProfile()
	b.rep.Connect = c
	b.logf("connected %d, subscribed %d, failed %d; all subscribed after %s", c.Connected, c.Subscribed, c.Failed, fmtMs(c.AllReadyMs))

	if err := b.sleep(ctx, cfg.Settle); err != nil {
		return err
	}
	b.gcServer(ctx)
	mem.ConnectedRSS = b.serverRSS()
	m1, _ := b.rest.scrapeMetrics(ctx)
	if c.Connected > 0 {
		n := float64(c.Connected)
		if mem.BaselineRSS > 0 {
			mem.RSSPerConn = float64(mem.ConnectedRSS-mem.BaselineRSS) / n
		}
		mem.HeapBefore, mem.HeapAfter = m0["go_memstats_heap_inuse_bytes"], m1["go_memstats_heap_inuse_bytes"]
		mem.HeapPerConn = (mem.HeapAfter - mem.HeapBefore) / n
		mem.StackBefore, mem.StackAfter = m0["go_memstats_stack_inuse_bytes"], m1["go_memstats_stack_inuse_bytes"]
		mem.StackPerConn = (mem.StackAfter - mem.StackBefore) / n
		mem.GoroutinesBef, mem.GoroutinesAft = m0["go_goroutines"], m1["go_goroutines"]
	}
	for _, pid := range ws.pids() {
		if v, err := procRSS(pid); err == nil {
			mem.ClientRSS += v
		}
	}
	b.rep.Memory = mem
	b.profile(ctx, "heap-connected", "/debug/pprof/heap")
	b.profile(ctx, "goroutine-connected", "/debug/pprof/goroutine")
	return nil
}

func mergeConnect(replies []reply) *ConnectInfo {
	c := &ConnectInfo{Errors: map[string]int{}}
	var hello, ready, hs, sub Histogram
	for _, r := range replies {
		cr := r.Connect
		if cr == nil {
			continue
		}
		c.Connected += cr.Connected
		c.Subscribed += cr.Subscribed
		c.Resumed += cr.Resumed
		c.Failed += cr.Failed
		for k, v := range cr.Errors {
			c.Errors[k] += v
		}
		hello.Merge(cr.Hello)
		ready.Merge(cr.Ready)
		hs.Merge(cr.Handshake)
		sub.Merge(cr.Subscribe)
		c.SnapshotBytes = max(c.SnapshotBytes, cr.SnapshotBytes)
	}
	c.AllConnectedMs, c.AllReadyMs = ms(hello.Max()), ms(ready.Max())
	c.Hello, c.Ready, c.Handshake, c.Subscribe = hello.Summary(), ready.Summary(), hs.Summary(), sub.Summary()
	return c
}

// hold keeps the connections idle, then checks they are all still open.
func (b *bench) hold(ctx context.Context) error {
	b.logf("holding %d connections for %s", b.rep.Connect.Connected, b.cfg.Hold)
	if err := b.sleep(ctx, b.cfg.Hold); err != nil {
		return err
	}
	d, _, err := b.collect(ctx, false)
	if err != nil {
		return err
	}
	b.rep.Hold = &HoldInfo{Seconds: b.cfg.Hold.Seconds(), Open: d.Open, Closed: d.Closed, RSS: b.serverRSS()}
	return nil
}

// collect sums the workers' delivery counters.
// With perSeq, out.PerSeq sums the deliveries of each change.
func (b *bench) collect(ctx context.Context, perSeq bool) (*deliveryReply, []uint64, error) {
	replies, err := b.workers.broadcast(ctx, command{Cmd: cmdCollect, PerSeq: perSeq})
	if err != nil {
		return nil, nil, err
	}
	out := &deliveryReply{Latency: &Histogram{}, Closed: map[string]int{}}
	var seqs []uint64
	for _, r := range replies {
		d := r.Delivery
		if d == nil {
			continue
		}
		if perSeq {
			if seqs == nil {
				seqs = make([]uint64, len(d.PerSeq)/4)
			}
			for i := range min(len(seqs), len(d.PerSeq)/4) {
				seqs[i] += uint64(binary.LittleEndian.Uint32(d.PerSeq[4*i:]))
			}
		}
		out.Deliveries += d.Deliveries
		out.Latency.Merge(d.Latency)
		out.Frames += d.Frames
		out.Changes += d.Changes
		out.Stray += d.Stray
		out.LastDelivery = max(out.LastDelivery, d.LastDelivery)
		out.Open += d.Open
		out.Ended += d.Ended
		for k, v := range d.Closed {
			out.Closed[k] += v
		}
	}
	if len(out.Closed) == 0 {
		out.Closed = nil
	}
	return out, seqs, nil
}

// rssSampler records the server's RSS every 250ms until stopped.
type rssSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples []int64
}

func (b *bench) sampleRSS() *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if v := b.serverRSS(); v > 0 {
				s.samples = append(s.samples, v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() []int64 {
	close(s.stop)
	<-s.done
	return s.samples
}

// deliver makes the status changes and measures their delivery.
func (b *bench) deliver(ctx context.Context) error {
	cfg := b.cfg
	sched := schedule{T0: time.Now().Add(300 * time.Millisecond).UnixNano(), Interval: float64(time.Second) / cfg.Rate, Count: cfg.Changes}
	if _, err := b.workers.broadcast(ctx, command{Cmd: cmdSchedule, Schedule: &sched}); err != nil {
		return err
	}
	before, _, err := b.collect(ctx, false)
	if err != nil {
		return err
	}
	m0, _ := b.rest.scrapeMetrics(ctx)
	clientPIDs := append(b.workers.pids(), os.Getpid())
	cpu0, ccpu0 := b.serverCPU(), cpuOf(clientPIDs...)
	sampler := b.sampleRSS()
	lastDue := time.Unix(0, sched.due(sched.Count-1))
	var profWG sync.WaitGroup
	if cfg.ProfileDir != "" {
		secs := int(math.Ceil(time.Until(lastDue).Seconds())) + 2
		profWG.Go(func() { b.profile(ctx, "cpu-changes", fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)) })
	}
	b.logf("making %d status changes at %.0f/s over %s", sched.Count, cfg.Rate, cfg.Publish)
	pres, err := publish(ctx, publishConfig{Mode: cfg.Publish, Sched: sched, Plan: b.plan, Conns: cfg.PublishConns,
		BaseURL: b.srv.BaseURL, AdminToken: cfg.AdminToken, Secret: cfg.JWTSecret, AckTimeout: 10 * time.Second})
	if err != nil {
		sampler.finish()
		return err
	}
	expected := pres.expectedDeliveries(b.plan)
	// Drain: until everything expected arrived (with Verify: until nothing
	// arrived for a second, as coalescing may deliver less than expected
	// and the final state is only comparable once all is delivered), or
	// Drain passed since the publisher finished.
	var d *deliveryReply
	drainStart := time.Now()
	lastCount, lastProgress := uint64(0), drainStart
	quiet := false
	for {
		if d, _, err = b.collect(ctx, false); err != nil {
			sampler.finish()
			return err
		}
		now := time.Now()
		if got := d.Deliveries - before.Deliveries; got != lastCount {
			lastCount, lastProgress = got, now
		}
		quiet = now.Sub(lastProgress) > time.Second
		if quiet || (!cfg.Verify && lastCount >= expected) || now.Sub(drainStart) > cfg.Drain {
			break
		}
		if err := b.sleep(ctx, 100*time.Millisecond); err != nil {
			sampler.finish()
			return err
		}
	}
	samples := sampler.finish()
	d, perSeq, err := b.collect(ctx, true)
	if err != nil {
		return err
	}
	di := &DeliveryInfo{Publish: pres, Expected: expected, Delivered: d.Deliveries - before.Deliveries,
		Latency: d.Latency.Summary(), Frames: d.Frames - before.Frames, Marked: d.Changes - before.Changes,
		Stray: d.Stray - before.Stray, Open: d.Open, Closed: d.Closed, Ended: d.Ended,
		ServerCPU: b.serverCPU() - cpu0, ClientCPU: (cpuOf(clientPIDs...) - ccpu0).Seconds(), RSSSamples: samples,
		Quiet: quiet || lastCount >= expected}
	if expected > 0 {
		di.Ratio = float64(di.Delivered) / float64(expected)
	}
	di.Changes = classifyChanges(b.plan, pres, perSeq)
	if d.LastDelivery > 0 {
		di.DrainMs = ms(time.Unix(0, d.LastDelivery).Sub(lastDue))
	}
	if di.Delivered > 0 {
		di.CPUPerDeliveryUs = di.ServerCPU * 1e6 / float64(di.Delivered)
	}
	if pres.Accepted > 0 {
		di.CPUPerEventUs = di.ServerCPU * 1e6 / float64(pres.Accepted)
	}
	for _, v := range samples {
		di.RSSMax = max(di.RSSMax, v)
	}
	if len(samples) > 0 {
		di.RSSEnd = samples[len(samples)-1]
	}
	if m1, err := b.rest.scrapeMetrics(ctx); err == nil && m0 != nil {
		di.ServerDeltasOut = m1["presenced_deltas_out_total"] - m0["presenced_deltas_out_total"]
		di.ServerFramesOut = m1["presenced_frames_out_total"] - m0["presenced_frames_out_total"]
		di.SlowConsumers = m1["presenced_slow_consumers_total"] - m0["presenced_slow_consumers_total"]
	}
	if cfg.Verify {
		v, err := b.verify(ctx)
		if err != nil {
			return err
		}
		di.Verify = v
	}
	b.rep.Delivery = di
	profWG.Wait()
	b.logf("delivered %d of %d expected; p99 %s", di.Delivered, expected, fmtMs(di.Latency.P99))
	return nil
}

// classifyChanges sorts the accepted changes by how many of their
// subscribers received them. A change is delivered to every subscriber of
// its group or to none: coalescing drops a change for the whole group when
// a later change of the same user follows within the window, so a change
// nobody got whose user's next change arrived was superseded. A change
// some subscribers got and others did not is a lost delivery (or a
// subscriber that disconnected).
func classifyChanges(p *plan, pres *publishResult, perSeq []uint64) ChangeCounts {
	var c ChangeCounts
	stride := len(p.publishers) // the next change of the same user
	for seq, ok := range pres.ok {
		if !ok || seq >= len(perSeq) {
			continue
		}
		got, want := perSeq[seq], uint64(p.expected(seq))
		switch {
		case got >= want:
			c.Full++
		case got == 0 && seq+stride < len(perSeq) && perSeq[seq+stride] > 0:
			c.Superseded++
		case got == 0:
			c.None++
		default:
			c.Partial++
			c.Missing += want - got
		}
	}
	return c
}

// verify reads every publisher's current status text from the server and
// has the workers compare it with the last change their subscribers saw.
func (b *bench) verify(ctx context.Context) (*verifyReply, error) {
	final := map[string]int{}
	ids := make([]string, len(b.plan.publishers))
	for i, u := range b.plan.publishers {
		ids[i] = b.plan.userID(u)
	}
	for chunk := range slices.Chunk(ids, 1000) {
		body, err := b.rest.do(ctx, http.MethodGet, "/v1/presence/users?ids="+strings.Join(chunk, ","), nil)
		if err != nil {
			return nil, fmt.Errorf("presence-bench: verify: %w", err)
		}
		var resp struct {
			Users []struct{ User, Text string }
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return nil, fmt.Errorf("presence-bench: verify: %w", err)
		}
		for _, u := range resp.Users {
			if n, ok := strings.CutPrefix(u.Text, markerPrefix); ok {
				if seq, err := strconv.Atoi(n); err == nil {
					final[u.User] = seq
				}
			}
		}
	}
	replies, err := b.workers.broadcast(ctx, command{Cmd: cmdVerify, Verify: final})
	if err != nil {
		return nil, err
	}
	v := &verifyReply{}
	for _, r := range replies {
		if r.Verify != nil {
			v.Match += r.Verify.Match
			v.Total += r.Verify.Total
		}
	}
	return v, nil
}

// reconnect drops every connection at once and measures until every one
// is subscribed again.
func (b *bench) reconnect(ctx context.Context) error {
	cfg := b.cfg
	b.logf("dropping and reconnecting %d connections", cfg.Conns)
	at := time.Now().Add(200 * time.Millisecond)
	cmds := make([]command, len(b.workers))
	for w := range b.workers {
		_, count := b.share(w)
		cmds[w] = command{Cmd: cmdReconnect, Reconnect: &reconnectCommand{
			At: at.UnixNano(), Sources: b.sources((count + cfg.PerSource - 1) / cfg.PerSource), PerSource: cfg.PerSource,
			Parallel: cfg.DialParallel, Resume: !cfg.NoResume, TimeoutMs: cfg.ConnectTimeout.Milliseconds(),
			JitterMs: cfg.ReconnectJitter.Milliseconds(),
		}}
	}
	stopProfile := b.phaseProfile(ctx, "cpu-reconnect")
	clientPIDs := append(b.workers.pids(), os.Getpid())
	cpu0, ccpu0 := b.serverCPU(), cpuOf(clientPIDs...)
	replies, err := b.workers.call(ctx, cmds)
	if err != nil {
		stopProfile()
		return err
	}
	c := mergeConnect(replies)
	c.ServerCPU, c.ClientCPU = b.serverCPU()-cpu0, (cpuOf(clientPIDs...) - ccpu0).Seconds()
	stopProfile()
	b.rep.Reconnect = c
	b.logf("reconnected %d, resubscribed %d (%d resumed), failed %d; all after %s", c.Connected, c.Subscribed, c.Resumed, c.Failed, fmtMs(c.AllReadyMs))
	if c.Failed > 0 {
		return errors.New("presence-bench: some connections did not reconnect")
	}
	return nil
}
