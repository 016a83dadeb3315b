package chaos_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/chaos"
)

var (
	run       = flag.Bool("chaos", false, "run the chaos suite (or set PRESENCED_CHAOS=1)")
	presenced = flag.String("chaos.presenced", os.Getenv("PRESENCED_CHAOS_BINARY"),
		"prebuilt presenced binary to run instead of building ./cmd/presenced (env PRESENCED_CHAOS_BINARY)")
	natsServer = flag.String("chaos.nats-server", os.Getenv("PRESENCED_CHAOS_NATS_SERVER"),
		"prebuilt nats-server for the external NATS scenarios (env PRESENCED_CHAOS_NATS_SERVER)")
	dir = flag.String("chaos.dir", os.Getenv("PRESENCED_CHAOS_DIR"),
		"directory for binaries, data and logs, kept (env PRESENCED_CHAOS_DIR; default a temporary one, kept only on failure)")
	extra = flag.String("chaos.flags", os.Getenv("PRESENCED_CHAOS_FLAGS"),
		"extra presenced flags, space-separated (env PRESENCED_CHAOS_FLAGS)")
	report = flag.String("chaos.report", os.Getenv("PRESENCED_CHAOS_REPORT"),
		"also write the table to this file (env PRESENCED_CHAOS_REPORT)")
)

// TestChaos runs every scenario as a subtest against real presenced
// processes in network namespaces, then logs the table. Each subtest fails
// when its scenario misses a goal of issue 14.
func TestChaos(t *testing.T) {
	if !*run && os.Getenv("PRESENCED_CHAOS") != "1" {
		t.Skip("the chaos suite runs with -chaos or PRESENCED_CHAOS=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s, err := chaos.NewSuite(ctx, chaos.Config{
		Presenced:  *presenced,
		NATSServer: *natsServer,
		Dir:        *dir,
		Flags:      strings.Fields(*extra),
		Logf:       t.Logf,
	})
	if errors.Is(err, chaos.ErrNoNamespaces) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the chaos suite: %v", err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)

	var rows []chaos.Row
	for _, sc := range chaos.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			row := s.Run(ctx, sc)
			rows = append(rows, row)
			for _, f := range row.Failures {
				t.Error(f)
			}
		})
	}
	if len(rows) == 0 {
		return
	}
	var b strings.Builder
	chaos.Table(&b, rows)
	t.Logf("chaos suite, logs in %s:\n%s", s.Dir(), b.String())
	if *report != "" {
		if err := os.WriteFile(filepath.Clean(*report), []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
