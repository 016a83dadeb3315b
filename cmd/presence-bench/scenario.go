package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// scenario is a named preset matching one target of issue 7. Each is
// bounded: a fixed number of connections and changes, fixed phase lengths.
type scenario struct {
	about string
	cfg   func() Config
}

func (s scenario) config() Config { return s.cfg() }

var scenarios = map[string]scenario{
	"idle19900": {
		about: "19,900 idle subscribed connections (199 groups of 100) held 10s: connect time and RSS per connection",
		cfg: func() Config {
			return Config{Spawn: true, Groups: []GroupSpec{{199, 100}}, Hold: 10 * time.Second,
				Targets: Targets{ConnectWithin: 3 * time.Second, RSSPerConnBytes: 8 << 10}}
		},
	},
	"fanout1k": {
		about: "1 group of 1,000 subscribers, 20 status changes/s for 15s: delivery latency",
		cfg: func() Config {
			return Config{Spawn: true, Groups: []GroupSpec{{1, 1000}}, Rate: 20, Duration: 15 * time.Second, SplitSubscribe: true,
				Targets: Targets{P99: 10 * time.Millisecond}}
		},
	},
	"fanout10k": {
		about: "1 group of 10,000 subscribers, 2 status changes/s for 15s: delivery latency and snapshot time",
		cfg: func() Config {
			return Config{Spawn: true, Groups: []GroupSpec{{1, 10000}}, Rate: 2, Duration: 15 * time.Second, SplitSubscribe: true,
				Targets: Targets{P99: 60 * time.Millisecond, Snapshot: time.Millisecond}}
		},
	},
	"ingest100k": {
		about: "100,000 status events/s for 10s over 1,000 users in 10 groups of 100, 10 subscribers each, sent in batches of 100 over REST: ingest rate, coalescing, bounded memory",
		cfg: func() Config {
			return Config{Spawn: true, Groups: []GroupSpec{{10, 100}}, Subscribers: 10, Rate: 100000,
				Duration: 10 * time.Second, Publishers: 1000, PublishConns: 32, PublishBatch: 100, Verify: true, Drain: 10 * time.Second,
				Targets: Targets{Rate: 100000}}
		},
	},
	"reconnect": {
		about: "19,900 subscribed connections dropped at once; reconnect and resume: time until all resubscribed",
		cfg: func() Config {
			return Config{Spawn: true, Groups: []GroupSpec{{199, 100}}, Reconnect: true,
				Targets: Targets{ConnectWithin: 3 * time.Second, ReconnectWithin: 5 * time.Second}}
		},
	},
	"join10k": {
		about: "1 group of 10,000 members all coming online at once, each subscribing on its hello: time until every subscriber sees all 10,000 present",
		cfg: func() Config {
			return Config{Spawn: true, Groups: []GroupSpec{{1, 10000}}, Converge: true, ConvergeTimeout: 60 * time.Second, SnapshotProbes: -1,
				Targets: Targets{ConvergeWithin: 5 * time.Second}}
		},
	},
	"coldstart": {
		about: "spawn to first WebSocket: the first run on an empty data dir, then 5 restarts with 10,000 users",
		cfg: func() Config {
			return Config{Spawn: true, Groups: []GroupSpec{{10, 1000}}, Conns: 100, ColdStarts: 5, SnapshotProbes: -1,
				Targets: Targets{ColdStart: 100 * time.Millisecond}}
		},
	},
}

func scenarioNames() []string {
	var out []string
	for n := range scenarios {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func usageIntro() string {
	var b strings.Builder
	b.WriteString("Load generator of presenced. Scenarios:\n")
	for _, n := range scenarioNames() {
		fmt.Fprintf(&b, "  %-11s %s\n", n, scenarios[n].about)
	}
	return b.String()
}
