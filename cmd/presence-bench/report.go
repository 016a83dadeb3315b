package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is everything a run measured. Sections of phases that did not run
// are nil. Durations are milliseconds, memory bytes, CPU seconds.
type Report struct {
	Scenario string      `json:"scenario,omitempty"`
	Label    string      `json:"label,omitempty"`
	Command  string      `json:"command"`
	Started  time.Time   `json:"started"`
	Seconds  float64     `json:"seconds"`
	Machine  MachineInfo `json:"machine"`
	Server   ServerInfo  `json:"server"`
	Setup    SetupInfo   `json:"setup"`

	Connect   *ConnectInfo    `json:"connect,omitempty"`
	Converge  *ConvergeInfo   `json:"converge,omitempty"`
	Memory    *MemoryInfo     `json:"memory,omitempty"`
	Hold      *HoldInfo       `json:"hold,omitempty"`
	Snapshot  *snapshotResult `json:"snapshot,omitempty"`
	Delivery  *DeliveryInfo   `json:"delivery,omitempty"`
	Reconnect *ConnectInfo    `json:"reconnect,omitempty"`
	ColdStart *ColdStartInfo  `json:"coldStart,omitempty"`

	// ServerLog counts the warnings and errors a spawned server logged, by
	// message.
	ServerLog map[string]int `json:"serverLog,omitempty"`

	Profiles []string       `json:"profiles,omitempty"`
	Targets  []TargetResult `json:"targets,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
	Errors   []string       `json:"errors,omitempty"`
}

// MachineInfo says where the figures were measured.
type MachineInfo struct {
	CPUs    int    `json:"cpus"`
	CPU     string `json:"cpu"`
	MemGiB  int    `json:"memGiB"`
	Kernel  string `json:"kernel"`
	Go      string `json:"go"`
	LoadAvg string `json:"loadAvgAtStart"`
	// BenchCPUs are the CPUs this tool (and so its workers) ran on: the
	// Cpus_allowed_list of /proc/self/status after --bench-cpus pinned
	// it, if given. BenchGOMAXPROCS is its Go scheduler's.
	BenchCPUs       string `json:"benchCPUs"`
	BenchPinned     bool   `json:"benchPinned,omitempty"`
	BenchGOMAXPROCS int    `json:"benchGomaxprocs"`
}

// ServerInfo is the presenced under test.
type ServerInfo struct {
	URL     string   `json:"url"`
	PID     int      `json:"pid,omitempty"`
	Spawned bool     `json:"spawned"`
	Args    []string `json:"args,omitempty"`
	// CPUs are the CPUs the server may run on, the Cpus_allowed_list of
	// /proc/<pid>/status ("" when its pid is not known); Pinned says
	// that --server-cpus set them. GOMAXPROCS is the server's, from its
	// go_sched_gomaxprocs_threads metric (0 if it has none).
	CPUs       string `json:"serverCPUs,omitempty"`
	Pinned     bool   `json:"serverPinned,omitempty"`
	GOMAXPROCS int    `json:"serverGomaxprocs,omitempty"`
	// ColdStartMs is spawn → first WebSocket hello of the first start.
	ColdStartMs float64 `json:"coldStartMs,omitempty"`
	// Nodes are a cluster's nodes (--nodes), node 0 first; the figures
	// of CPU and RSS above and below are the sums over them.
	Nodes []NodeInfo `json:"nodes,omitempty"`
}

// NodeInfo is one node of a spawned cluster.
type NodeInfo struct {
	URL string `json:"url"`
	PID int    `json:"pid"`
}

// SetupInfo is the topology the run created.
type SetupInfo struct {
	Groups        string  `json:"groups"`
	Users         int     `json:"users"`
	NumGroups     int     `json:"numGroups"`
	Conns         int     `json:"conns"`
	Subscriptions int     `json:"subscriptions"`
	Publishers    int     `json:"publishers,omitempty"`
	Workers       int     `json:"workers"`
	Sources       int     `json:"sources"`
	ImportLines   int     `json:"importLines"`
	ImportMs      float64 `json:"importMs"`
}

// ConnectInfo is a connect (or reconnect) phase over every worker.
type ConnectInfo struct {
	Connected  int            `json:"connected"`
	Subscribed int            `json:"subscribed"`
	Resumed    int            `json:"resumed,omitempty"`
	Failed     int            `json:"failed"`
	Errors     map[string]int `json:"errors,omitempty"`
	// AllConnectedMs is from the start to the last hello; AllReadyMs to
	// the last subscription's reply. With Split, every connection got its
	// hello before any subscribed, and AllReadyMs and Ready count from the
	// start of the subscribe phase.
	Split          bool           `json:"split,omitempty"`
	AllConnectedMs float64        `json:"allConnectedMs"`
	AllReadyMs     float64        `json:"allReadyMs"`
	Hello          LatencySummary `json:"hello"`
	Ready          LatencySummary `json:"ready"`
	Handshake      LatencySummary `json:"handshake"`
	Subscribe      LatencySummary `json:"subscribe"`
	SnapshotBytes  int            `json:"snapshotBytes"`
	ServerCPU      float64        `json:"serverCpuSeconds"`
	ClientCPU      float64        `json:"clientCpuSeconds"`
	// Fanout is the server's delivery of the changes of users coming
	// online, from the start of the phase to the end of Settle (connect
	// phase only).
	Fanout *FanoutInfo `json:"fanout,omitempty"`
}

// MemoryInfo is the server's memory before and after connecting.
type MemoryInfo struct {
	BaselineRSS   int64   `json:"baselineRss"`
	ConnectedRSS  int64   `json:"connectedRss"`
	RSSPerConn    float64 `json:"rssPerConn"`
	HeapBefore    float64 `json:"heapInuseBefore"`
	HeapAfter     float64 `json:"heapInuseAfter"`
	HeapPerConn   float64 `json:"heapPerConn"`
	StackBefore   float64 `json:"stackInuseBefore"`
	StackAfter    float64 `json:"stackInuseAfter"`
	StackPerConn  float64 `json:"stackPerConn"`
	GoroutinesBef float64 `json:"goroutinesBefore"`
	GoroutinesAft float64 `json:"goroutinesAfter"`
	ClientRSS     int64   `json:"clientRss"` // the workers together
	// Nodes is each node's memory, for a cluster; the Go heap and stack
	// figures above are node 0's.
	Nodes []NodeMemory `json:"nodes,omitempty"`
}

// NodeMemory is one node's RSS before and after connecting, and the
// connections it holds.
type NodeMemory struct {
	BaselineRSS  int64   `json:"baselineRss"`
	ConnectedRSS int64   `json:"connectedRss"`
	Conns        int     `json:"conns"`
	RSSPerConn   float64 `json:"rssPerConn"`
}

// HoldInfo is the state after holding the connections idle.
type HoldInfo struct {
	Seconds float64        `json:"seconds"`
	Open    int            `json:"open"`
	Closed  map[string]int `json:"closed,omitempty"`
	RSS     int64          `json:"rss"`
}

// DeliveryInfo is the status-change phase.
type DeliveryInfo struct {
	Publish   *publishResult `json:"publish"`
	Expected  uint64         `json:"expected"`
	Delivered uint64         `json:"delivered"`
	// Ratio is Delivered / Expected.
	Ratio float64 `json:"ratio"`
	// Latency is from each change's due time to its arrival at each
	// subscriber.
	Latency LatencySummary `json:"latency"`
	// NodeLatency is Latency by the node the subscriber is connected to,
	// for a cluster: the changes are made through node 0.
	NodeLatency []LatencySummary `json:"nodeLatency,omitempty"`
	// Frames counts delta frames received, Marked the changes with a
	// marker in them (Stray of them outside the schedule).
	Frames uint64 `json:"frames"`
	Marked uint64 `json:"marked"`
	Stray  uint64 `json:"stray,omitempty"`
	// Changes sorts the accepted changes by who received them.
	Changes ChangeCounts `json:"changes"`
	// DrainMs is from the last due time to the last delivery; Quiet says
	// whether deliveries had stopped (or all arrived) when the phase ended.
	DrainMs   float64 `json:"drainMs"`
	Quiet     bool    `json:"quiet"`
	ServerCPU float64 `json:"serverCpuSeconds"`
	// CPUPerDeliveryUs is ServerCPU per delivered change, CPUPerEventUs
	// per accepted status change, in microseconds.
	CPUPerDeliveryUs float64        `json:"serverCpuPerDeliveryUs"`
	CPUPerEventUs    float64        `json:"serverCpuPerEventUs"`
	ClientCPU        float64        `json:"clientCpuSeconds"`
	RSSMax           int64          `json:"rssMax"`
	RSSEnd           int64          `json:"rssEnd"`
	RSSSamples       []int64        `json:"rssSamples,omitempty"` // every 250ms
	Open             int            `json:"open"`
	Closed           map[string]int `json:"closed,omitempty"`
	Ended            int            `json:"ended,omitempty"`
	ServerDeltasOut  float64        `json:"serverDeltasOut"`
	ServerFramesOut  float64        `json:"serverFramesOut"`
	SlowConsumers    float64        `json:"serverSlowConsumers"`
	Verify           *verifyReply   `json:"verify,omitempty"`
	// Fanout is the server's delivery of the phase's changes, from the
	// first change to the end of the drain.
	Fanout *FanoutInfo `json:"fanout,omitempty"`
}

// ChangeCounts sorts accepted changes: Full reached every subscriber of
// their group; Superseded reached none because a later change of the same
// user replaced them in a coalescing window; None reached nobody and were
// not superseded; Partial reached some subscribers only, Missing
// deliveries short in all.
type ChangeCounts struct {
	Full       int    `json:"full"`
	Superseded int    `json:"superseded"`
	None       int    `json:"none"`
	Partial    int    `json:"partial"`
	Missing    uint64 `json:"missing"`
}

// ColdStartInfo is spawn → first WebSocket hello.
type ColdStartInfo struct {
	FirstRunMs float64   `json:"firstRunMs"`
	RestartsMs []float64 `json:"restartsMs"`
	MinMs      float64   `json:"minMs"`
	MedianMs   float64   `json:"medianMs"`
	MaxMs      float64   `json:"maxMs"`
}

// TargetResult is one goal checked.
type TargetResult struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Pass     bool   `json:"pass"`
}

func machineInfo() MachineInfo {
	m := MachineInfo{CPUs: runtime.NumCPU(), Go: runtime.Version(), BenchGOMAXPROCS: runtime.GOMAXPROCS(0)}
	m.BenchCPUs, _ = procCPUsAllowed(0)
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemGiB = int((kb + 1<<19) >> 20)
		}
	}
	return m
}

// checkTargets compares the report with the configured targets.
func (r *Report) checkTargets(t Targets) {
	add := func(name, target, measured string, pass bool) {
		r.Targets = append(r.Targets, TargetResult{name, target, measured, pass})
	}
	missing := func(name, target string) { add(name, target, "not measured", false) }
	if t.ConnectWithin > 0 {
		name, target := "all connections subscribed", "≤ "+t.ConnectWithin.String()
		if c := r.Connect; c != nil {
			add(name, target, fmt.Sprintf("%s (%d/%d)", fmtMs(c.AllReadyMs), c.Subscribed, r.Setup.Subscriptions),
				c.Failed == 0 && c.AllReadyMs <= ms(t.ConnectWithin))
		} else {
			missing(name, target)
		}
	}
	if t.RSSPerConnBytes > 0 {
		name, target := "server RSS per connection", fmt.Sprintf("≤ %s", fmtBytes(float64(t.RSSPerConnBytes)))
		if m := r.Memory; m != nil && m.BaselineRSS > 0 {
			add(name, target, fmtBytes(m.RSSPerConn), m.RSSPerConn <= float64(t.RSSPerConnBytes))
		} else {
			missing(name, target)
		}
	}
	if t.P99 > 0 {
		name, target := "delivery p99", "≤ "+t.P99.String()
		if d := r.Delivery; d != nil && d.Latency.Count > 0 {
			add(name, target, fmt.Sprintf("%s (delivered %.2f%%)", fmtMs(d.Latency.P99), 100*d.Ratio),
				d.Latency.P99 <= ms(t.P99) && d.Delivered == d.Expected)
		} else {
			missing(name, target)
		}
	}
	if t.Rate > 0 {
		name, target := "status changes accepted", fmt.Sprintf("≥ %.0f/s", t.Rate)
		if d := r.Delivery; d != nil {
			add(name, target, fmt.Sprintf("%.0f/s", d.Publish.Rate), d.Publish.Rate >= t.Rate)
		} else {
			missing(name, target)
		}
	}
	if t.Snapshot > 0 {
		name, target := "snapshot of the largest group (REST, fastest)", "≤ "+t.Snapshot.String()
		if s := r.Snapshot; s != nil {
			add(name, target, fmt.Sprintf("%s (%d members, %s)", fmtMs(s.REST.Min), s.Members, fmtBytes(float64(s.Bytes))),
				s.REST.Min <= ms(t.Snapshot))
		} else {
			missing(name, target)
		}
	}
	if t.ReconnectWithin > 0 {
		name, target := "all resubscribed after a drop", "≤ "+t.ReconnectWithin.String()
		if c := r.Reconnect; c != nil {
			add(name, target, fmt.Sprintf("%s (%d/%d)", fmtMs(c.AllReadyMs), c.Subscribed, r.Setup.Subscriptions),
				c.Failed == 0 && c.AllReadyMs <= ms(t.ReconnectWithin))
		} else {
			missing(name, target)
		}
	}
	if t.ConvergeWithin > 0 {
		name, target := "every subscriber converged (sees its whole group present)", "≤ "+t.ConvergeWithin.String()
		if cv := r.Converge; cv != nil {
			measured, pass := convergeTarget(cv, t.ConvergeWithin)
			add(name, target, measured, pass)
		} else {
			missing(name, target)
		}
	}
	if t.ColdStart > 0 {
		name, target := "cold start to first WebSocket", "≤ "+t.ColdStart.String()
		if c := r.ColdStart; c != nil {
			add(name, target, fmt.Sprintf("median %s, first run %s", fmtMs(c.MedianMs), fmtMs(c.FirstRunMs)),
				c.MedianMs <= ms(t.ColdStart))
		} else if r.Server.ColdStartMs > 0 {
			add(name, target, fmtMs(r.Server.ColdStartMs), r.Server.ColdStartMs <= ms(t.ColdStart))
		} else {
			missing(name, target)
		}
	}
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// table writes the report for people: one "name  value" line per figure,
// grouped by phase.
type table struct {
	w    io.Writer
	rows [][2]string
}

func (t *table) section(name string) {
	t.flush()
	fmt.Fprintf(t.w, "\n%s\n", name)
}

func (t *table) row(k, format string, args ...any) {
	t.rows = append(t.rows, [2]string{k, fmt.Sprintf(format, args...)})
}

func (t *table) flush() {
	width := 0
	for _, r := range t.rows {
		width = max(width, len([]rune(r[0])))
	}
	for _, r := range t.rows {
		fmt.Fprintf(t.w, "  %-*s  %s\n", width, r[0], r[1])
	}
	t.rows = t.rows[:0]
}

// WriteTable writes the readable form of r.
func (r *Report) WriteTable(w io.Writer) {
	t := &table{w: w}
	title := "presence-bench"
	if r.Scenario != "" {
		title += " · " + r.Scenario
	}
	if r.Label != "" && r.Label != r.Scenario {
		title += " · " + r.Label
	}
	fmt.Fprintf(w, "%s · %s · %.1fs\n", title, r.Started.Format(time.RFC3339), r.Seconds)
	t.section("machine")
	t.row("cpu", "%d × %s, %d GiB, Linux %s, %s", r.Machine.CPUs, r.Machine.CPU, r.Machine.MemGiB, r.Machine.Kernel, r.Machine.Go)
	t.row("load average at start", "%s", r.Machine.LoadAvg)
	t.row("bench CPUs", "%s", fmtCPUs(r.Machine.BenchCPUs, r.Machine.BenchPinned, "--bench-cpus", r.Machine.BenchGOMAXPROCS))
	t.row("command", "%s", r.Command)
	t.section("server")
	t.row("url", "%s (pid %d, spawned %v)", r.Server.URL, r.Server.PID, r.Server.Spawned)
	for i, n := range r.Server.Nodes {
		t.row(fmt.Sprintf("node %d", i), "%s (pid %d)", n.URL, n.PID)
	}
	if len(r.Server.Args) > 0 {
		t.row("args", "%s", strings.Join(r.Server.Args, " "))
	}
	if r.Server.CPUs != "" {
		t.row("server CPUs", "%s", fmtCPUs(r.Server.CPUs, r.Server.Pinned, "--server-cpus", r.Server.GOMAXPROCS))
	} else {
		t.row("server CPUs", "unknown (no server pid)")
	}
	if r.Server.ColdStartMs > 0 {
		t.row("cold start (first run)", "%s", fmtMs(r.Server.ColdStartMs))
	}
	s := r.Setup
	t.section("setup")
	t.row("groups", "%s: %d groups, %d users (import of %d lines: %s)", s.Groups, s.NumGroups, s.Users, s.ImportLines, fmtMs(s.ImportMs))
	t.row("connections", "%d in %d worker(s) from %d source address(es), %d subscribing", s.Conns, s.Workers, s.Sources, s.Subscriptions)
	if c := r.Connect; c != nil {
		t.section("connect")
		writeConnect(t, c)
	}
	if cv := r.Converge; cv != nil {
		t.section("convergence (from the start of dialling until every subscriber sees its whole group present)")
		writeConverge(t, cv)
	}
	if m := r.Memory; m != nil {
		t.section("server memory")
		t.row("RSS baseline → connected", "%s → %s", fmtBytes(float64(m.BaselineRSS)), fmtBytes(float64(m.ConnectedRSS)))
		t.row("RSS per connection", "%s", fmtBytes(m.RSSPerConn))
		t.row("Go heap in use per connection", "%s (%s → %s)", fmtBytes(m.HeapPerConn), fmtBytes(m.HeapBefore), fmtBytes(m.HeapAfter))
		t.row("goroutine stacks per connection", "%s (%.0f → %.0f goroutines)", fmtBytes(m.StackPerConn), m.GoroutinesBef, m.GoroutinesAft)
		t.row("client RSS (workers)", "%s", fmtBytes(float64(m.ClientRSS)))
		for i, n := range m.Nodes {
			t.row(fmt.Sprintf("node %d", i), "RSS %s → %s, %d connections, %s per connection",
				fmtBytes(float64(n.BaselineRSS)), fmtBytes(float64(n.ConnectedRSS)), n.Conns, fmtBytes(n.RSSPerConn))
		}
	}
	if h := r.Hold; h != nil {
		t.section("hold")
		t.row("held idle", "%.1fs: %d open, closed by server: %s, RSS %s", h.Seconds, h.Open, fmtCounts(h.Closed), fmtBytes(float64(h.RSS)))
	}
	if sn := r.Snapshot; sn != nil {
		t.section("snapshot of the largest group")
		t.row("group", "%s: %d members, %s", sn.Group, sn.Members, fmtBytes(float64(sn.Bytes)))
		t.row("WebSocket subscribe → snapshot", "%s  min %s", sn.WS, fmtMs(sn.WS.Min))
		t.row("REST GET /v1/presence/groups/{id}", "%s  min %s", sn.REST, fmtMs(sn.REST.Min))
	}
	if d := r.Delivery; d != nil {
		p := d.Publish
		t.section("status changes")
		t.row("published ("+p.Mode+")", "%d scheduled, %d sent, %d accepted, %d failed, %.0f/s accepted", p.Scheduled, p.Sent, p.Accepted, p.Failed, p.Rate)
		for msg, n := range p.Errors {
			t.row("  publish error", "%d× %s", n, msg)
		}
		t.row("send lag (due → sent)", "%s", p.SendLag)
		t.row("publish ack (sent → reply)", "%s", p.Ack)
		t.row("delivered / expected", "%d / %d (%.3f%%)", d.Delivered, d.Expected, 100*d.Ratio)
		t.row("latency (due → received)", "%s", d.Latency)
		for i, l := range d.NodeLatency {
			where := "on node 0, which takes the changes"
			if i > 0 {
				where = "on another node"
			}
			t.row(fmt.Sprintf("  subscribers of node %d", i), "%s  (%s)", l, where)
		}
		t.row("frames, changes received", "%d delta frames, %d marked changes (%d stray)", d.Frames, d.Marked, d.Stray)
		ch := d.Changes
		t.row("changes by reach", "%d to every subscriber, %d superseded by the same user's next (coalesced), %d to nobody, %d to some only (%d deliveries missing)",
			ch.Full, ch.Superseded, ch.None, ch.Partial, ch.Missing)
		if d.Quiet {
			t.row("drain after last due", "%s", fmtMs(d.DrainMs))
		} else {
			t.row("drain after last due", "%s, still delivering when the drain bound (--drain) ended the phase", fmtMs(d.DrainMs))
		}
		t.row("server CPU", "%.2fs: %.2fµs per delivered change, %.1fµs per accepted status change", d.ServerCPU, d.CPUPerDeliveryUs, d.CPUPerEventUs)
		t.row("client CPU (bench)", "%.2fs", d.ClientCPU)
		t.row("server RSS max / end", "%s / %s", fmtBytes(float64(d.RSSMax)), fmtBytes(float64(d.RSSEnd)))
		t.row("server counters", "%.0f deltas out, %.0f frames out, %.0f slow consumers cut", d.ServerDeltasOut, d.ServerFramesOut, d.SlowConsumers)
		t.row("connections", "%d open, closed by server: %s, subscriptions ended: %d", d.Open, fmtCounts(d.Closed), d.Ended)
		if v := d.Verify; v != nil {
			t.row("final state matches", "%d / %d (subscriber, user) pairs", v.Match, v.Total)
		}
		fanoutRow(t, d.Fanout)
	}
	if c := r.Reconnect; c != nil {
		t.section("reconnect storm")
		writeConnect(t, c)
	}
	if c := r.ColdStart; c != nil {
		t.section("cold start (spawn → first WebSocket hello)")
		t.row("first run (empty data dir)", "%s", fmtMs(c.FirstRunMs))
		rs := make([]string, len(c.RestartsMs))
		for i, v := range c.RestartsMs {
			rs[i] = fmtMs(v)
		}
		t.row("restarts", "%s", strings.Join(rs, ", "))
		t.row("restarts min / median / max", "%s / %s / %s", fmtMs(c.MinMs), fmtMs(c.MedianMs), fmtMs(c.MaxMs))
	}
	if len(r.ServerLog) > 0 {
		t.section("server log: warnings and errors")
		msgs := make([]string, 0, len(r.ServerLog))
		for m := range r.ServerLog {
			msgs = append(msgs, m)
		}
		slices.Sort(msgs)
		for _, m := range msgs {
			t.row(fmt.Sprintf("%d×", r.ServerLog[m]), "%s", m)
		}
	}
	if len(r.Profiles) > 0 {
		t.section("profiles")
		for _, p := range r.Profiles {
			t.row("", "%s", p)
		}
	}
	if len(r.Targets) > 0 {
		t.section("targets")
		for _, tr := range r.Targets {
			mark := "PASS"
			if !tr.Pass {
				mark = "MISS"
			}
			t.row(tr.Name, "%s  target %s  measured %s", mark, tr.Target, tr.Measured)
		}
	}
	if len(r.Notes) > 0 {
		t.section("notes")
		for _, n := range r.Notes {
			t.row("-", "%s", n)
		}
	}
	if len(r.Errors) > 0 {
		t.section("errors")
		for _, e := range r.Errors {
			t.row("!", "%s", e)
		}
	}
	t.flush()
}

func writeConnect(t *table, c *ConnectInfo) {
	t.row("connected / subscribed / failed", "%d / %d / %d", c.Connected, c.Subscribed, c.Failed)
	if c.Resumed > 0 {
		t.row("answered with resumed", "%d", c.Resumed)
	}
	errs := make([]string, 0, len(c.Errors))
	for msg := range c.Errors {
		errs = append(errs, msg)
	}
	slices.Sort(errs)
	for _, msg := range errs {
		t.row("  error", "%d× %s", c.Errors[msg], msg)
	}
	t.row("all connected (hello)", "%s", fmtMs(c.AllConnectedMs))
	if c.Split {
		t.row("all subscribed (from the subscribe phase)", "%s", fmtMs(c.AllReadyMs))
	} else {
		t.row("all subscribed (snapshot)", "%s", fmtMs(c.AllReadyMs))
	}
	t.row("handshake → hello", "%s", c.Handshake)
	t.row("subscribe → snapshot", "%s", c.Subscribe)
	t.row("biggest snapshot", "%s", fmtBytes(float64(c.SnapshotBytes)))
	t.row("CPU server / bench", "%.2fs / %.2fs", c.ServerCPU, c.ClientCPU)
	fanoutRow(t, c.Fanout)
}

// fmtCPUs writes a CPU list of the report, and how it came about.
func fmtCPUs(list string, pinned bool, flag string, gomaxprocs int) string {
	how := "not pinned"
	if pinned {
		how = "pinned by " + flag
	}
	if gomaxprocs > 0 {
		return fmt.Sprintf("%s (%s, GOMAXPROCS %d)", list, how, gomaxprocs)
	}
	return fmt.Sprintf("%s (%s)", list, how)
}

// fmtCounts writes close codes and their counts, "none" for none.
func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d× %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes r as indented JSON to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
