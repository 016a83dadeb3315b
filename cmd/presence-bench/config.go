package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

var errConfig = errors.New("presence-bench: config")

// maxChanges bounds the status changes of a run.
const maxChanges = 20_000_000

// maxNodes bounds --nodes: every node is a presenced with its own
// nats-server on this machine.
const maxNodes = 9

// Config is one run. The zero value of a field means its default, as the
// flags describe it; a scenario preset fills fields before the flags given
// on the command line override them.
type Config struct {
	// Scenario names the preset the run started from ("" for none).
	Scenario string
	// Label names the run in the report and in profile file names
	// (default: the scenario).
	Label string

	// Server: either Spawn (start presenced from PresencedBin with a fresh
	// data directory) or URL (with ServerPID to measure it).
	Spawn        bool
	PresencedBin string   // default: go build ./cmd/presenced
	ServerArgs   []string // extra presenced flags when spawning
	ServerLog    string   // file for the spawned server's output (default: a temp file)
	URL          string   // http://host:port of a running server
	ServerPID    int
	AdminToken   string // default: generated when spawning
	JWTSecret    string // default: generated when spawning
	// Nodes spawns this many presenced nodes joined into one cluster by
	// their embedded nats-servers' routes (default 1). Connection i
	// dials node i mod Nodes; users, groups and changes go through node
	// 0, so a change reaches the other nodes' subscribers over the
	// cluster.
	Nodes int
	// ServerCPUs pins a spawned server to these CPUs from its start (and
	// every restart); BenchCPUs pins this process, and so its workers,
	// before any worker starts. Empty: no pinning.
	ServerCPUs CPUList
	BenchCPUs  CPUList
	// PprofAddr is the server's pprof address (spawn: passed as
	// --pprof-addr); with ProfileDir, heap and CPU profiles are saved there.
	PprofAddr  string
	ProfileDir string
	// ProfileSeconds is the length of the CPU profiles of the connect and
	// reconnect phases, taken from their start (default 10).
	ProfileSeconds int

	// Load.
	Prefix      string // id prefix of users and groups (default "pb")
	Groups      []GroupSpec
	Conns       int // default: every member
	Subscribers int // per group; 0: every member's connection
	Workers     int // default: ceil(Conns / MaxConnsPerWorker)
	// PerSource is how many connections share one loopback source
	// address (default 10000, leaving ports free for a reconnect).
	PerSource    int
	DialParallel int // handshakes in flight per worker (default 256)

	// ConnectTimeout bounds the connect phase (default 60s); Hold keeps
	// the connections open, idle, after connecting (default 0).
	ConnectTimeout time.Duration
	// SplitSubscribe connects every connection before any subscribes, so
	// that users coming online cause no deltas and the subscribe phase is
	// timed on its own.
	SplitSubscribe bool
	// SplitHold keeps the connections of a split connect idle this long
	// before they subscribe.
	SplitHold time.Duration
	Hold      time.Duration
	Settle    time.Duration // wait before measuring memory (default 2s)
	// Converge has every subscribing connection keep the members of its
	// group it sees present, and measures, after connecting, until each
	// sees all of them (at most ConvergeTimeout from the start of
	// dialling, default 60s). A convergence target implies it.
	Converge        bool
	ConvergeTimeout time.Duration

	// Status changes: Rate per second for Duration (or Changes in all),
	// made with Publish ("rest" or "ws") rotating over Publishers users.
	Rate         float64
	Duration     time.Duration
	Changes      int
	Publish      string
	Publishers   int // default: max(1, Rate), at most every user
	PublishConns int // concurrent REST requests (default 64)
	// PublishBatch > 1 sends that many changes per REST request
	// (POST /v1/presence/status/batch), each when the batch's last is due.
	PublishBatch int
	// Drain is how long to wait for deliveries after the last change
	// (default 5s; the wait also ends when every delivery arrived or none
	// came for a second).
	Drain time.Duration
	// Verify compares, after the run, the last change every subscriber saw
	// of every user with the server's current status text.
	Verify bool

	SnapshotProbes int  // snapshots of the largest group to time (default 20, at most 90 over a WebSocket; negative: none)
	Reconnect      bool // drop every connection at once and reconnect
	NoResume       bool // reconnect with plain subscribes instead of resuming
	// ReconnectJitter spreads the redials of the reconnect storm over a
	// random delay below it (default 0: all at once).
	ReconnectJitter time.Duration
	ColdStarts      int // spawn the server this many more times to time cold start

	// Targets, checked and reported when set.
	Targets Targets

	// Timeout bounds the whole run (default: computed from the phases).
	Timeout time.Duration
	// JSONPath, if set, receives the report as JSON.
	JSONPath string
}

// Targets are the goals of issue 7 that a run checks; zero: not checked.
type Targets struct {
	ConnectWithin   time.Duration `json:"connectWithin,omitempty"`
	RSSPerConnBytes int64         `json:"rssPerConnBytes,omitempty"`
	P99             time.Duration `json:"p99,omitempty"`
	Rate            float64       `json:"rate,omitempty"`
	Snapshot        time.Duration `json:"snapshot,omitempty"`
	ReconnectWithin time.Duration `json:"reconnectWithin,omitempty"`
	ColdStart       time.Duration `json:"coldStart,omitempty"`
	ConvergeWithin  time.Duration `json:"convergeWithin,omitempty"`
}

// listFlag is a repeatable string flag, also taking space-separated
// values.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, " ")
}

func (l listFlag) Set(s string) error {
	*l.v = append(*l.v, strings.Fields(s)...)
	return nil
}

type groupsFlag struct{ v *[]GroupSpec }

func (g groupsFlag) String() string {
	if g.v == nil {
		return ""
	}
	return formatGroups(*g.v)
}

func (g groupsFlag) Set(s string) error {
	gs, err := parseGroups(s)
	if err != nil {
		return err
	}
	*g.v = gs
	return nil
}

// register binds every flag to c, with c's current values as defaults.
func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Scenario, "scenario", c.Scenario, "preset: "+strings.Join(scenarioNames(), ", ")+"; other flags override it")
	fs.StringVar(&c.Label, "label", c.Label, "name of the run in the report and in profile file names (default: the scenario)")
	fs.BoolVar(&c.Spawn, "spawn", c.Spawn, "start presenced as a child with a temporary data dir, and measure it")
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "spawn this many presenced nodes as one cluster (embedded NATS routes); connection i dials node i mod N, changes go through node 0")
	fs.StringVar(&c.PresencedBin, "presenced", c.PresencedBin, "presenced binary for --spawn (default: go build ./cmd/presenced into a temp dir)")
	fs.Var(listFlag{&c.ServerArgs}, "server-args", "extra flags for the spawned presenced, e.g. --server-args='--coalesce 5ms' (repeatable)")
	fs.StringVar(&c.ServerLog, "server-log", c.ServerLog, "append the spawned presenced's output to this file (default: a temporary file)")
	fs.StringVar(&c.URL, "url", c.URL, "URL of a running presenced (instead of --spawn), e.g. http://127.0.0.1:8080")
	fs.IntVar(&c.ServerPID, "server-pid", c.ServerPID, "pid of the --url server, to read its RSS and CPU from /proc")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "admin API token (generated with --spawn)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", c.JWTSecret, "the server's --jwt-secret, to sign user tokens (generated with --spawn)")
	fs.Var(cpuListFlag{&c.ServerCPUs}, "server-cpus", "pin the spawned presenced to these CPUs, in Linux list syntax: 0, 0-1, 0,2-3 (default: no pinning)")
	fs.Var(cpuListFlag{&c.BenchCPUs}, "bench-cpus", "pin this tool and its worker processes to these CPUs, e.g. 1 (default: no pinning)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "the server's pprof address (passed to a spawned server), e.g. 127.0.0.1:6060")
	fs.StringVar(&c.ProfileDir, "profile-dir", c.ProfileDir, "save the server's heap and CPU profiles here (needs --pprof-addr)")
	fs.IntVar(&c.ProfileSeconds, "profile-seconds", c.ProfileSeconds, "length of the CPU profiles of the connect and reconnect phases (default 10)")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "prefix of the user and group ids the run creates")
	fs.Var(groupsFlag{&c.Groups}, "groups", "groups as COUNTxSIZE[,COUNTxSIZE...], e.g. 1x10000 or 10x1000")
	fs.IntVar(&c.Conns, "conns", c.Conns, "WebSocket connections (default: one per member); connection i is user i mod users")
	fs.IntVar(&c.Subscribers, "subscribers", c.Subscribers, "subscribing connections per group (0: every member's)")
	fs.IntVar(&c.Workers, "workers", c.Workers, fmt.Sprintf("worker processes holding the connections (default: conns/%d rounded up)", MaxConnsPerWorker))
	fs.IntVar(&c.PerSource, "per-source", c.PerSource, "connections per loopback source address 127.0.0.2, 127.0.0.3, ...")
	fs.IntVar(&c.DialParallel, "dial-parallel", c.DialParallel, "WebSocket handshakes in flight per worker")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "bound of the connect phase")
	fs.BoolVar(&c.SplitSubscribe, "split-subscribe", c.SplitSubscribe, "connect every connection first, then subscribe them all (no online deltas during connect)")
	fs.DurationVar(&c.SplitHold, "split-hold", c.SplitHold, "with --split-subscribe, keep the connections idle this long before they subscribe")
	fs.DurationVar(&c.Hold, "hold", c.Hold, "keep the connections open and idle this long after connecting")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "wait before reading the server's memory after connecting")
	fs.BoolVar(&c.Converge, "converge", c.Converge, "after connecting, measure until every subscriber sees every member of its group present")
	fs.DurationVar(&c.ConvergeTimeout, "converge-timeout", c.ConvergeTimeout, "bound of the convergence, from the start of dialling (default 60s)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "status changes per second, open loop (0: none)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to make status changes")
	fs.IntVar(&c.Changes, "changes", c.Changes, "number of status changes (default: rate × duration)")
	fs.StringVar(&c.Publish, "publish", c.Publish, "how changes are made: rest (POST /v1/presence/status) or ws (set_status on a publisher WebSocket)")
	fs.IntVar(&c.Publishers, "publishers", c.Publishers, "users the changes rotate over (default: rate, at least 1)")
	fs.IntVar(&c.PublishConns, "publish-conns", c.PublishConns, "concurrent REST requests of the publisher")
	fs.IntVar(&c.PublishBatch, "publish-batch", c.PublishBatch, "changes per REST request (POST /v1/presence/status/batch; 1: one per request)")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "longest wait for deliveries after the last change")
	fs.BoolVar(&c.Verify, "verify", c.Verify, "check that every subscriber ends with every user's final status text")
	fs.IntVar(&c.SnapshotProbes, "snapshot-probes", c.SnapshotProbes, "snapshots of the largest group to time over REST, and over a WebSocket up to 90 (negative: none)")
	fs.BoolVar(&c.Reconnect, "reconnect", c.Reconnect, "drop every connection at once, reconnect and resubscribe")
	fs.BoolVar(&c.NoResume, "no-resume", c.NoResume, "reconnect with plain subscribes instead of resuming from the last revision")
	fs.DurationVar(&c.ReconnectJitter, "reconnect-jitter", c.ReconnectJitter, "spread the redials of the reconnect storm over a random delay below this")
	fs.IntVar(&c.ColdStarts, "cold-starts", c.ColdStarts, "restart the spawned server this many times to time cold start")
	fs.DurationVar(&c.Targets.ConnectWithin, "target-connect", c.Targets.ConnectWithin, "target: every connection subscribed within")
	fs.Int64Var(&c.Targets.RSSPerConnBytes, "target-rss-per-conn", c.Targets.RSSPerConnBytes, "target: server RSS bytes per connection")
	fs.DurationVar(&c.Targets.P99, "target-p99", c.Targets.P99, "target: p99 delivery latency")
	fs.Float64Var(&c.Targets.Rate, "target-rate", c.Targets.Rate, "target: status changes accepted per second")
	fs.DurationVar(&c.Targets.Snapshot, "target-snapshot", c.Targets.Snapshot, "target: snapshot of the largest group (fastest REST GET)")
	fs.DurationVar(&c.Targets.ReconnectWithin, "target-reconnect", c.Targets.ReconnectWithin, "target: every connection resubscribed within")
	fs.DurationVar(&c.Targets.ColdStart, "target-cold-start", c.Targets.ColdStart, "target: spawn to first WebSocket")
	fs.DurationVar(&c.Targets.ConvergeWithin, "target-converge", c.Targets.ConvergeWithin, "target: every subscriber sees every member of its group present within, from the start of dialling (implies --converge)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound of the whole run (default: from the phases)")
	fs.StringVar(&c.JSONPath, "json", c.JSONPath, "write the report as JSON to this file")
}

// parseConfig reads the command line: the scenario's preset first, then
// every flag given.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	// First pass: only to learn the scenario.
	var probe Config
	fs := flag.NewFlagSet("presence-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	probe.register(fs)
	if err := fs.Parse(args); err != nil {
		// Report with full usage below.
		probe = Config{}
	}
	c := Config{}
	if probe.Scenario != "" {
		preset, ok := scenarios[probe.Scenario]
		if !ok {
			return Config{}, fmt.Errorf("%w: unknown scenario %q (have %s)", errConfig, probe.Scenario, strings.Join(scenarioNames(), ", "))
		}
		c = preset.config()
		c.Scenario = probe.Scenario
	}
	fs = flag.NewFlagSet("presence-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: presence-bench [--scenario NAME] [flags]\n\n%s\nFlags:\n", usageIntro())
		fs.PrintDefaults()
	}
	// Preset list values are replaced, not appended to, by flags.
	serverArgs := c.ServerArgs
	c.ServerArgs = nil
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", errConfig, fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["server-args"] {
		c.ServerArgs = serverArgs
	}
	if given["url"] && !given["spawn"] {
		c.Spawn = false // a preset spawns unless pointed at a server
	}
	return c, nil
}

// withDefaults fills zero fields and checks the combination.
func (c Config) withDefaults() (Config, error) {
	if c.Spawn == (c.URL != "") {
		return c, fmt.Errorf("%w: give exactly one of --spawn and --url", errConfig)
	}
	if !c.Spawn && (c.AdminToken == "" || c.JWTSecret == "") {
		return c, fmt.Errorf("%w: --url needs --admin-token and --jwt-secret", errConfig)
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		return c, fmt.Errorf("%w: --jwt-secret must be at least 32 bytes", errConfig)
	}
	if c.Nodes == 0 {
		c.Nodes = 1
	}
	if c.Nodes < 1 || c.Nodes > maxNodes {
		return c, fmt.Errorf("%w: --nodes %d out of 1..%d", errConfig, c.Nodes, maxNodes)
	}
	if c.Nodes > 1 && !c.Spawn {
		return c, fmt.Errorf("%w: --nodes needs --spawn", errConfig)
	}
	if c.Nodes > 1 && c.ColdStarts > 0 {
		return c, fmt.Errorf("%w: --cold-starts restarts one node: not with --nodes", errConfig)
	}
	if c.ColdStarts > 0 && !c.Spawn {
		return c, fmt.Errorf("%w: --cold-starts needs --spawn", errConfig)
	}
	if len(c.ServerCPUs) > 0 && !c.Spawn {
		return c, fmt.Errorf("%w: --server-cpus needs --spawn: this tool can only pin a server it starts (pin a --url server with taskset)", errConfig)
	}
	if c.ProfileDir != "" && c.PprofAddr == "" {
		return c, fmt.Errorf("%w: --profile-dir needs --pprof-addr", errConfig)
	}
	if c.ProfileSeconds <= 0 {
		c.ProfileSeconds = 10
	}
	if c.Prefix == "" {
		c.Prefix = "pb"
	}
	if len(c.Groups) == 0 {
		c.Groups = []GroupSpec{{Count: 1, Size: 100}}
	}
	members := 0
	for _, g := range c.Groups {
		members += g.Count * g.Size
	}
	if c.Conns == 0 {
		c.Conns = members
	}
	if c.Conns < 0 || c.Subscribers < 0 {
		return c, fmt.Errorf("%w: negative --conns or --subscribers", errConfig)
	}
	if c.Workers == 0 {
		c.Workers = max(1, (c.Conns+MaxConnsPerWorker-1)/MaxConnsPerWorker)
	}
	if c.Workers < 1 || (c.Conns+c.Workers-1)/c.Workers > MaxConnsPerWorker {
		return c, fmt.Errorf("%w: %d workers cannot hold %d connections (at most %d each)", errConfig, c.Workers, c.Conns, MaxConnsPerWorker)
	}
	if c.PerSource <= 0 {
		c.PerSource = 10000
	}
	if c.DialParallel <= 0 {
		c.DialParallel = 256
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 60 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
	if c.Targets.ConvergeWithin > 0 {
		c.Converge = true
	}
	if c.ConvergeTimeout <= 0 {
		c.ConvergeTimeout = 60 * time.Second
	}
	if c.Rate < 0 || c.Changes < 0 || c.Duration < 0 {
		return c, fmt.Errorf("%w: negative --rate, --changes or --duration", errConfig)
	}
	if c.Changes == 0 {
		c.Changes = int(c.Rate * c.Duration.Seconds())
	}
	if c.Changes > 0 && c.Rate == 0 {
		return c, fmt.Errorf("%w: --changes needs --rate", errConfig)
	}
	if c.Changes > maxChanges {
		return c, fmt.Errorf("%w: %d changes is more than this tool bounds a run to (%d)", errConfig, c.Changes, maxChanges)
	}
	if c.Publish == "" {
		c.Publish = publishREST
	}
	if c.Publish != publishREST && c.Publish != publishWS {
		return c, fmt.Errorf("%w: --publish %q: want rest or ws", errConfig, c.Publish)
	}
	if c.Publishers <= 0 {
		c.Publishers = max(1, int(c.Rate))
	}
	c.Publishers = min(c.Publishers, members)
	if c.PublishConns <= 0 {
		c.PublishConns = 64
	}
	if c.PublishBatch <= 0 {
		c.PublishBatch = 1
	}
	if c.PublishBatch > 1000 || (c.PublishBatch > 1 && c.Publish != publishREST) {
		return c, fmt.Errorf("%w: --publish-batch %d: 1 to 1000, with --publish rest", errConfig, c.PublishBatch)
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.SnapshotProbes == 0 {
		c.SnapshotProbes = 20
	}
	if c.Timeout <= 0 {
		// Every phase is bounded; the whole run is bounded by their sum
		// with room for setup and shutdown.
		c.Timeout = 2*time.Minute + c.ConnectTimeout + c.Hold + c.Settle + c.Drain +
			time.Duration(float64(c.Changes)/max(c.Rate, 1)*float64(time.Second)) +
			time.Duration(c.ColdStarts)*time.Minute
		if c.Reconnect {
			c.Timeout += c.ConnectTimeout
		}
		if c.Converge {
			c.Timeout += c.ConvergeTimeout
		}
	}
	return c, nil
}
