package main

import (
	"errors"
	"io"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	c, err := parseConfig([]string{"--scenario", "fanout1k", "--rate", "5", "--server-args", "--coalesce 1ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// The preset fills what the flags leave alone.
	if !c.Spawn || c.Rate != 5 || c.Duration != 15*time.Second || formatGroups(c.Groups) != "1x1000" ||
		c.Targets.P99 != 10*time.Millisecond || len(c.ServerArgs) != 2 {
		t.Fatalf("%+v", c)
	}
	c, err = c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Changes != 75 || c.Conns != 1000 || c.Workers != 1 || c.Publishers != 5 {
		t.Fatalf("defaults: changes %d conns %d workers %d publishers %d", c.Changes, c.Conns, c.Workers, c.Publishers)
	}
	c, err = parseConfig([]string{"--scenario", "idle19900", "--url", "http://127.0.0.1:1", "--admin-token", "a", "--jwt-secret", "0123456789abcdef0123456789abcdef"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = c.withDefaults(); err != nil || c.Spawn || c.Workers != 2 {
		t.Fatalf("--url with a preset: spawn %v workers %d %v", c.Spawn, c.Workers, err)
	}
}

func TestParseConfigJoin(t *testing.T) {
	c, err := parseConfig([]string{"--scenario", "join10k", "--converge-timeout", "90s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = c.withDefaults(); err != nil {
		t.Fatal(err)
	}
	if !c.Spawn || !c.Converge || c.SplitSubscribe || c.ConvergeTimeout != 90*time.Second || c.Conns != 10000 ||
		c.Targets.ConvergeWithin != 5*time.Second || c.Changes != 0 || c.Timeout < c.ConnectTimeout+c.ConvergeTimeout {
		t.Fatalf("%+v", c)
	}
	// A convergence target alone implies the measurement.
	c, err = parseConfig([]string{"--spawn", "--groups", "1x50", "--target-converge", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = c.withDefaults(); err != nil || !c.Converge || c.ConvergeTimeout != time.Minute {
		t.Fatalf("--target-converge: converge %v timeout %s %v", c.Converge, c.ConvergeTimeout, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "nope"},
		{"--url", "http://x", "--spawn"},
		{},
		{"--url", "http://x"},
		{"--spawn", "--jwt-secret", "short"},
		{"--spawn", "--conns", "40000", "--workers", "2", "--groups", "1x10"},
		{"--spawn", "--publish", "carrier-pigeon"},
		{"--spawn", "--rate", "10", "--publish", "ws", "--publish-batch", "10"},
		{"--spawn", "--rate", "10", "--publish-batch", "1001"},
		{"--spawn", "--changes", "5"},
		{"--url", "http://x", "--admin-token", "a", "--jwt-secret", "0123456789abcdef0123456789abcdef", "--cold-starts", "1"},
		{"--url", "http://x", "--admin-token", "a", "--jwt-secret", "0123456789abcdef0123456789abcdef", "--server-cpus", "0"},
		{"--url", "http://x", "--admin-token", "a", "--jwt-secret", "0123456789abcdef0123456789abcdef", "--nodes", "3"},
		{"--spawn", "--nodes", "-1"},
		{"--spawn", "--nodes", "10"},
		{"--spawn", "--nodes", "3", "--cold-starts", "1"},
	} {
		c, err := parseConfig(args, io.Discard)
		if err == nil {
			_, err = c.withDefaults()
		}
		if !errors.Is(err, errConfig) {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// TestConnectionsNeeded: 19,900 WebSockets under a limit of 20,000 open
// files need more than presenced's default --max-connections (19,900, which
// left the bench's snapshot probe refused with 503); a load well under the
// default changes nothing.
func TestConnectionsNeeded(t *testing.T) {
	for _, c := range []struct{ conns, nofile, want int }{
		{19900, 20000, 19960},
		{19850, 20000, 19914},
		{1000, 20000, 0},
		{19900, 0, 0},
	} {
		if got := connectionsNeeded(c.conns, c.nofile); got != c.want {
			t.Errorf("connectionsNeeded(%d, %d) = %d, want %d", c.conns, c.nofile, got, c.want)
		}
	}
}
