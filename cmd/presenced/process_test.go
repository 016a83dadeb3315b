package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/presenced/presenced/internal/natstest"
)

// The tests of this file run presenced as real processes: the test binary
// re-executes itself as the command when runMainEnv is set.

const runMainEnv = "PRESENCED_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if args := os.Getenv(runMainEnv); args != "" {
		os.Args = append([]string{"presenced"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const testToken = "process-test-admin-token-0123456789"

// proc is one presenced process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	exited chan struct{}
	err    error // after exited
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs presenced with args; it is killed in cleanup.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(os.Args[0], "-test.run=^$"), args)
}

// startCmd runs cmd, which runs this test binary, as presenced with args.
func startCmd(t *testing.T, cmd *exec.Cmd, args []string) *proc {
	t.Helper()
	cmd.Env = append(os.Environ(), runMainEnv+"="+strings.Join(args, "\x1f"), "PRESENCED_LOG_JSON=true")
	p := &proc{t: t, cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// waitExit waits for the process to exit by itself and returns its code.
func (p *proc) waitExit(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		p.t.Fatalf("still running after %v; stderr:\n%s", within, p.stderr.String())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatal(p.err)
	return -1
}

// baseURL waits until the process printed its API address and answers
// /healthz.
func (p *proc) baseURL() string {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.t.Fatalf("exited: %v\nstderr:\n%s", p.err, p.stderr.String())
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "API:"); ok {
				base := strings.TrimSuffix(strings.TrimSpace(rest), "/v1/")
				if resp, err := http.Get(base + "/healthz"); err == nil {
					resp.Body.Close()
					return base
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("never ready; stderr:\n%s", p.stderr.String())
	return ""
}

func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(60 * time.Second); code != 0 {
		p.t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
}

func nodeArgs(dir string, more ...string) []string {
	return append([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--admin-token", testToken}, more...)
}

// TestSecondServerOnSameDataDir starts a second presenced on the data of a
// running one: it must exit non-zero at once, naming the holder, and leave
// the first one serving. Before, it opened the live store.
func TestSecondServerOnSameDataDir(t *testing.T) {
	dir := t.TempDir()
	first := start(t, nodeArgs(dir)...)
	base := first.baseURL()
	second := start(t, nodeArgs(dir, "--startup-timeout", "20s")...)
	if code := second.waitExit(15 * time.Second); code == 0 {
		t.Fatal("the second server exited 0")
	}
	msg := second.stderr.String()
	if !strings.Contains(msg, "locked by process "+strconv.Itoa(first.cmd.Process.Pid)) || !strings.Contains(msg, dir) {
		t.Fatalf("the second server said:\n%s", msg)
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the first server's /readyz: %d", resp.StatusCode)
	}
}

// TestUnusableStartFailsFast: a data directory presenced cannot write, or a
// cluster name without routes, ends the process at once with one line
// that names the cause, instead of a hang after "Can't start JetStream".
func TestUnusableStartFailsFast(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"data dir is a file", nodeArgs(filepath.Join(file, "data")), file},
		{"data dir under /proc", nodeArgs("/proc/1/presenced-data"), "/proc/1/presenced-data"},
		{"cluster without routes", nodeArgs(t.TempDir(), "--cluster-name", "c", "--cluster-listen", "127.0.0.1:0"), "--routes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, append(tt.args, "--startup-timeout", "30s")...)
			if code := p.waitExit(10 * time.Second); code == 0 {
				t.Fatal("exited 0")
			}
			lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "presenced: ") || !strings.Contains(last, tt.want) {
				t.Fatalf("last line %q does not name %q; stderr:\n%s", last, tt.want, p.stderr.String())
			}
		})
	}
}

// seedUsers creates n users through the API.
func seedUsers(t *testing.T, base string, n int) {
	t.Helper()
	for i := range n {
		body := fmt.Sprintf(`{"id":"u%03d","username":"u%03d"}`, i, i)
		req, _ := http.NewRequest("POST", base+"/v1/users", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create user %d: %d", i, resp.StatusCode)
		}
	}
}

// membershipBlocks are the message block files of the membership bucket.
func membershipBlocks(t *testing.T, dir string) []string {
	t.Helper()
	var blks []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".blk") && filepath.Base(filepath.Dir(filepath.Dir(p))) == "KV_presenced_membership" {
			blks = append(blks, p)
		}
		return nil
	})
	if len(blks) == 0 {
		t.Fatalf("no membership block files under %s", dir)
	}
	return blks
}

// TestDamagedDataDir damages the membership bucket's files between two
// runs: a block file cut in half, or deleted. The node must not hang with
// nothing said, nor start as if nothing happened: it either starts and
// says at error level how many records were lost, or exits non-zero with a
// line that names the cause.
func TestDamagedDataDir(t *testing.T) {
	for _, damage := range []string{"truncate", "delete"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			p := start(t, nodeArgs(dir)...)
			seedUsers(t, p.baseURL(), 50)
			p.stop()
			for _, blk := range membershipBlocks(t, dir) {
				switch damage {
				case "truncate":
					fi, err := os.Stat(blk)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.Truncate(blk, fi.Size()/2); err != nil {
						t.Fatal(err)
					}
				case "delete":
					if err := os.Remove(blk); err != nil {
						t.Fatal(err)
					}
				}
			}
			again := start(t, nodeArgs(dir, "--startup-timeout", "20s")...)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				select {
				case <-again.exited:
					lines := strings.Split(strings.TrimSpace(again.stderr.String()), "\n")
					if last := lines[len(lines)-1]; again.err == nil || !strings.HasPrefix(last, "presenced: ") {
						t.Fatalf("exited (%v) without saying why:\n%s", again.err, again.stderr.String())
					}
					return
				default:
				}
				for _, line := range strings.Split(again.stderr.String(), "\n") {
					if strings.Contains(line, `"records lost"`) {
						if !strings.Contains(line, `"level":"error"`) {
							t.Fatalf("lost records not logged at error level: %s", line)
						}
						t.Logf("reported: %s", line)
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("neither failed nor reported the damage:\nstdout:\n%s\nstderr:\n%s", again.stdout.String(), again.stderr.String())
		})
	}
}

// startLimited runs presenced with at most nofile open files.
func startLimited(t *testing.T, nofile int, args ...string) *proc {
	t.Helper()
	shell := fmt.Sprintf(`ulimit -n %d && exec "$0"`, nofile)
	return startCmd(t, exec.Command("/bin/sh", "-c", shell, os.Args[0], "-test.run=^$"), args)
}

// TestIdleConnectionsDoNotLockEveryoneOut fills a node's open files with
// idle keep-alive connections: a new connection must still be answered at
// once (503 for the API, 200 for /healthz), the refusals counted, and the
// API must work again once the idle connections go. Before, every new
// connection went unanswered while the descriptors were gone; later, one
// that came while silent connections held every answerer was reset.
func TestIdleConnectionsDoNotLockEveryoneOut(t *testing.T) {
	const nofile = 256
	p := startLimited(t, nofile, nodeArgs(t.TempDir())...)
	base := p.baseURL()
	host := strings.TrimPrefix(base, "http://")
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range nofile {
		c, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		// One keep-alive request each, then silence.
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
			t.Fatal(err)
		}
	}
	// Connections that say nothing hold the node's answerers for their whole
	// deadline: a request behind them must wait its turn, not be reset.
	for range 40 {
		c, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	quick := &http.Client{Timeout: 5 * time.Second}
	get := func(path string, token bool) (int, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		resp, err := quick.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get("/v1/users", true); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("the API with every descriptor taken: %d %v, want 503 at once", code, err)
	}
	if code, err := get("/healthz", false); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz with every descriptor taken: %d %v, want 200", code, err)
	}
	// The probe and the scrape see the node as it is: ready, and its
	// metrics. Before, both got the 503 of the API.
	if code, err := get("/readyz", false); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz with every descriptor taken: %d %v, want 200", code, err)
	}
	if code, err := get("/metrics", false); err != nil || code != http.StatusOK {
		t.Fatalf("/metrics with every descriptor taken: %d %v, want 200", code, err)
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, err := get("/v1/users", true)
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API once the idle connections went: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	resp, err := quick.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "presenced_connections_refused_total") ||
		strings.Contains(string(metrics), "presenced_connections_refused_total 0\n") {
		t.Fatalf("refusals not counted:\n%s", metrics)
	}
}

// TestConnectionsLeaveDescriptorsForTheStore asks for a connection limit
// that leaves the store 6 of 256 open files, then opens more connections
// than that: the node must keep descriptors for its store all the same, and
// the store must still take writes. Before, connections and the refusals of
// those over the limit took every descriptor: in a reconnect storm of
// presence-bench, nats-server then failed to open a block file, and the
// presence stream refused every later write until the process restarted.
func TestConnectionsLeaveDescriptorsForTheStore(t *testing.T) {
	const nofile = 256
	p := startLimited(t, nofile, nodeArgs(t.TempDir(), "--max-connections", strconv.Itoa(nofile-6))...)
	base := p.baseURL()
	host := strings.TrimPrefix(base, "http://")
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	most := 0
	sample := func() {
		if fds, err := os.ReadDir(fdDir); err == nil {
			most = max(most, len(fds))
		}
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range nofile + 40 {
		c, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		sample()
	}
	for range 20 {
		sample()
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("the node held at most %d of its %d open files", most, nofile)
	if free := nofile - most; free < fdSlackWanted {
		t.Fatalf("the node held %d of its %d open files: %d left for its store, want at least %d", most, nofile, free, fdSlackWanted)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("POST", base+"/v1/users", strings.NewReader(`{"id":"after","username":"after"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write once the connections went: %v %v\nstderr:\n%s", resp, err, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fdSlackWanted is the room the node must keep for its store's files.
const fdSlackWanted = 16

// TestNATSClientsLeaveDescriptorsForTheStore floods the embedded NATS
// client port (--nats-listen) of a node limited to 256 open files with
// signed-in publishers, more than its descriptors: the port must refuse
// those over its own bound, and the node must keep its descriptors, go on
// answering and take writes. Before, the port took every descriptor:
// nats-server failed to open its files ("too many open files"), /healthz
// went unanswered, and the store refused writes until a restart.
func TestNATSClientsLeaveDescriptorsForTheStore(t *testing.T) {
	const nofile = 256
	natsAddr := fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t))
	p := startLimited(t, nofile, nodeArgs(t.TempDir(), "--nats-listen", natsAddr,
		"--nats-publisher-password", "publisher-password-0123")...)
	base := p.baseURL()
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	refused := 0
	for range nofile + 50 {
		nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo("publisher", "publisher-password-0123"),
			nats.NoReconnect(), nats.Timeout(2*time.Second))
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, nc)
	}
	t.Logf("%d publishers connected, %d refused", len(conns), refused)
	quick := &http.Client{Timeout: 5 * time.Second}
	resp, err := quick.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with the NATS port flooded: %v", err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("POST", base+"/v1/users", strings.NewReader(`{"id":"during","username":"during"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = quick.Do(req)
	if err != nil {
		t.Fatalf("a write with the NATS port flooded: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a write with the NATS port flooded: %d\nstderr:\n%s", resp.StatusCode, p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), "too many open files") {
		t.Fatalf("the node ran out of descriptors:\n%s", p.stderr.String())
	}
}
