package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// bench is one run in progress.
type bench struct {
	cfg  Config
	log  io.Writer // progress lines
	rep  *Report
	plan *plan
	srv  *serverProc
	// others are a cluster's nodes after the first (srv).
	others  []*serverProc
	rest    *restClient
	workers workerPool
	tmp     string
	// nextSource is the next unused loopback source address (see
	// sourceAddr); a reconnect takes fresh ones so that ports in TIME_WAIT
	// do not get in the way.
	nextSource int
	// logOffset is where this run's part of the server log starts.
	logOffset int64
	// mu guards rep where goroutines of one phase report into it.
	mu sync.Mutex
}

// Run executes cfg and returns its report. The run is bounded by
// cfg.Timeout; it stops every process it started before returning. args
// are the command line, recorded in the report.
func Run(ctx context.Context, cfg Config, args []string, progress io.Writer) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// Pin before any worker (or anything else) is started, so that all
	// inherit the mask; the machine figures then say what was pinned.
	if err := pinSelf(cfg.BenchCPUs); err != nil {
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
	b.rep.Machine.BenchPinned = len(cfg.BenchCPUs) > 0
	if want := cfg.BenchCPUs.String(); want != "" && b.rep.Machine.BenchCPUs != want {
		b.note("--bench-cpus %s: the bench may run on CPUs %s (the kernel drops CPUs that are offline or not allowed)", want, b.rep.Machine.BenchCPUs)
	}
	if both := cfg.BenchCPUs.overlap(cfg.ServerCPUs); len(both) > 0 {
		b.note("the bench and the server share CPUs %s: each one's load slows the other", both)
	}
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
		var wg sync.WaitGroup
		for _, s := range b.nodes() {
			wg.Go(func() {
				if err := s.stop(context.Background()); err != nil {
					b.mu.Lock()
					b.rep.Errors = append(b.rep.Errors, err.Error())
					b.mu.Unlock()
				}
			})
		}
		wg.Wait()
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
