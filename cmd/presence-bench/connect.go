package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// connect starts the workers and opens every connection at once.
func (b *bench) connect(ctx context.Context) error {
	cfg := b.cfg
	// Baseline: the server with its users and groups, before any
	// connection.
	if err := b.sleep(ctx, time.Second); err != nil {
		return err
	}
	b.gcServer(ctx)
	baseline := b.nodeRSS()
	mem := &MemoryInfo{BaselineRSS: b.serverRSS()}
	// The fan-out of the connect phase runs from here, before any
	// connection, to the scrape after Settle, when the deltas of users
	// coming online have been delivered.
	m0, err0 := b.rest.scrapeMetrics(ctx)
	fanout := b.meterFanout(ctx, m0, err0)
	defer fanout.stop()

	deadline, _ := ctx.Deadline()
	var profile func(int) string
	if cfg.ProfileDir != "" {
		// the server's profiles create the directory only after this phase
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return err
		}
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
			URL: b.srv.BaseURL, URLs: b.clusterURLs(), Secret: cfg.JWTSecret, Expires: deadline.Add(time.Hour).Unix(),
			Topology: b.plan.Topology, First: first, Count: count,
			Sources: b.sources((count + cfg.PerSource - 1) / cfg.PerSource), PerSource: cfg.PerSource,
			Parallel: cfg.DialParallel, At: at.UnixNano(), TimeoutMs: cfg.ConnectTimeout.Milliseconds(),
			Track: cfg.Verify, Split: cfg.SplitSubscribe, Converge: cfg.Converge,
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
		sc := &subscribeCommand{At: time.Now().Add(100*time.Millisecond + cfg.SplitHold).UnixNano(), TimeoutMs: cfg.ConnectTimeout.Milliseconds()}
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
	if cfg.Converge {
		if err := b.converge(ctx, at, fanout, cpu0, ccpu0, clientPIDs); err != nil {
			return err
		}
	}

	if err := b.sleep(ctx, cfg.Settle); err != nil {
		return err
	}
	b.gcServer(ctx)
	mem.ConnectedRSS = b.serverRSS()
	if len(baseline) > 1 {
		for i, v := range b.nodeRSS() {
			// Connection j dials node j mod nodes.
			n := NodeMemory{BaselineRSS: baseline[i], ConnectedRSS: v, Conns: (cfg.Conns - i + len(baseline) - 1) / len(baseline)}
			if n.Conns > 0 {
				n.RSSPerConn = float64(v-baseline[i]) / float64(n.Conns)
			}
			mem.Nodes = append(mem.Nodes, n)
		}
	}
	m1, err1 := b.rest.scrapeMetrics(ctx)
	if c.Fanout, err = fanout.finish(m1, err1); err != nil {
		b.fanoutNote("connect", err)
	}
	if c.Connected > 0 {
		n := float64(c.Connected)
		if mem.BaselineRSS > 0 {
			mem.RSSPerConn = float64(mem.ConnectedRSS-mem.BaselineRSS) / n
		}
		if len(mem.Nodes) > 0 {
			n = float64(mem.Nodes[0].Conns) // the metrics below are node 0's
		}
		mem.HeapBefore, mem.HeapAfter = m0.value("go_memstats_heap_inuse_bytes"), m1.value("go_memstats_heap_inuse_bytes")
		mem.HeapPerConn = (mem.HeapAfter - mem.HeapBefore) / n
		mem.StackBefore, mem.StackAfter = m0.value("go_memstats_stack_inuse_bytes"), m1.value("go_memstats_stack_inuse_bytes")
		mem.StackPerConn = (mem.StackAfter - mem.StackBefore) / n
		mem.GoroutinesBef, mem.GoroutinesAft = m0.value("go_goroutines"), m1.value("go_goroutines")
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
