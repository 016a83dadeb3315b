package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Config configures a Suite. Zero values are the defaults.
type Config struct {
	// Presenced is a prebuilt presenced binary to run, for instance the
	// baseline of a fix; empty: ./cmd/presenced of the module is built.
	Presenced string
	// NATSServer is a prebuilt nats-server for the external NATS
	// scenarios; empty: built from the module cache on first use.
	NATSServer string
	// ModuleDir is a directory inside the module to build from (default:
	// the working directory).
	ModuleDir string
	// Dir receives the binaries, data dirs and logs; empty: a new temporary
	// directory, removed by Close when every scenario passed.
	Dir string
	// Flags are added to every presenced command line (for instance
	// route credentials).
	Flags []string
	// Logf receives progress lines (default: none).
	Logf func(format string, args ...any)
}

// Suite runs scenarios, each on a fresh network and cluster.
type Suite struct {
	cfg       Config
	dir       string
	ownDir    bool
	presenced string
	admin     string
	secret    string
	logf      func(format string, args ...any)

	mu sync.Mutex
	// mu guards the following fields.
	natsBin string
	runs    int
	failed  bool
}

// NewSuite checks that network namespaces can be made (ErrNoNamespaces
// otherwise), removes the leftovers of earlier runs that crashed and
// builds what it needs.
func NewSuite(ctx context.Context, cfg Config) (*Suite, error) {
	s := &Suite{cfg: cfg, logf: cfg.Logf, admin: randomHex(24), secret: randomHex(24)}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if removed := RemoveStale(); len(removed) > 0 {
		s.logf("removed namespaces left by earlier runs: %v", removed)
	}
	if err := CheckNamespaces(ctx); err != nil {
		return nil, err
	}
	s.dir = cfg.Dir
	if s.dir == "" {
		d, err := os.MkdirTemp("", "presence-chaos-")
		if err != nil {
			return nil, err
		}
		s.dir, s.ownDir = d, true
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	s.presenced = cfg.Presenced
	if s.presenced == "" {
		root, err := ModuleRoot(ctx, cfg.ModuleDir)
		if err != nil {
			return nil, err
		}
		s.presenced = filepath.Join(s.dir, "presenced")
		start := time.Now()
		if err := buildPresenced(ctx, root, s.presenced); err != nil {
			return nil, err
		}
		s.logf("built %s from %s in %s", s.presenced, root, secs(time.Since(start)))
	} else if abs, err := filepath.Abs(s.presenced); err == nil {
		s.presenced = abs
	}
	if _, err := os.Stat(s.presenced); err != nil {
		return nil, fmt.Errorf("chaos: presenced binary: %w", err)
	}
	return s, nil
}

// Dir is where binaries, data and logs go.
func (s *Suite) Dir() string { return s.dir }

// natsServer returns the nats-server binary, building it on first use.
func (s *Suite) natsServer(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.natsBin != "" {
		return s.natsBin, nil
	}
	if s.cfg.NATSServer != "" {
		abs, err := filepath.Abs(s.cfg.NATSServer)
		if err != nil {
			return "", err
		}
		s.natsBin = abs
		return abs, nil
	}
	root, err := ModuleRoot(ctx, s.cfg.ModuleDir)
	if err != nil {
		return "", err
	}
	out := filepath.Join(s.dir, "nats-server")
	if err := buildNATSServer(ctx, root, out); err != nil {
		return "", err
	}
	s.natsBin = out
	return out, nil
}

// Run runs one scenario on a world of its own and returns what it
// measured. Its failures are in Row.Failures; on failure the tails of the
// processes' logs go to Logf.
func (s *Suite) Run(ctx context.Context, sc Scenario) Row {
	s.mu.Lock()
	s.runs++
	tag := fmt.Sprint(s.runs)
	s.mu.Unlock()
	row := Row{Scenario: sc.Name}
	start := time.Now()
	if sc.Budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sc.Budget)
		defer cancel()
	}
	s.logf("%s: %s", sc.Name, sc.About)
	e, err := s.newEnv(ctx, tag, sc.Name, sc.env)
	if err != nil {
		row.fail("setup: %v", err)
	} else {
		s.logf("%s: ready after %s", sc.Name, secs(time.Since(start)))
		row.Notes = append(row.Notes, e.Notes...)
		if err := sc.run(ctx, e, &row); err != nil {
			row.fail("%v", err)
		}
		if !row.Passed() {
			s.logf("%s", e.Tails(25))
			for _, d := range e.digest() {
				row.note("%s", d)
			}
		}
		e.Close()
	}
	row.Took = time.Since(start)
	if ctx.Err() != nil {
		row.fail("the scenario ran out of its time (%s): %v", secs(sc.Budget), ctx.Err())
	}
	if !row.Passed() {
		s.mu.Lock()
		s.failed = true
		s.mu.Unlock()
		s.logf("%s: logs kept in %s", sc.Name, filepath.Join(s.dir, sc.Name))
	}
	return row
}

// Close removes the suite's temporary directory unless a scenario failed.
func (s *Suite) Close() {
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if s.ownDir && !failed {
		_ = os.RemoveAll(s.dir)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
