package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/protocol"
)

// serverProc is the presenced under test: a child process this tool
// started (spawned), or one reached by URL with an optional pid.
type serverProc struct {
	// BaseURL is http://host:port, without a trailing slash.
	BaseURL string
	PID     int
	spawned bool
	cmd     *exec.Cmd
	exited  chan struct{} // closed when a spawned process has exited
	waitErr error         // written before exited closes
	dataDir string
	logPath string
	args    []string
}

// spawnConfig says how to start presenced.
type spawnConfig struct {
	// Bin is the presenced binary.
	Bin string
	// DataDir is the data directory; required (the caller owns it).
	DataDir string
	// Addr is the HTTP address; "" picks a free loopback port.
	Addr       string
	AdminToken string
	JWTSecret  string
	PprofAddr  string
	// Args are extra flags, after the ones above (so they win).
	Args []string
	// LogPath receives the server's stdout and stderr.
	LogPath string
	// CPUs, if any, is the affinity the server starts with.
	CPUs CPUList
}

// freeLoopbackAddr returns a loopback address with a port nobody listens on
// right now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// spawnServer starts presenced and returns once its first WebSocket
// handshake succeeded, with the time that took from process start: the
// cold start.
func spawnServer(ctx context.Context, sc spawnConfig) (*serverProc, time.Duration, error) {
	if sc.Addr == "" {
		a, err := freeLoopbackAddr()
		if err != nil {
			return nil, 0, err
		}
		sc.Addr = a
	}
	args := []string{"--http-addr", sc.Addr, "--data-dir", sc.DataDir, "--admin-token", sc.AdminToken,
		"--jwt-secret", sc.JWTSecret, "--rest-rate", "-1", "--log-json"}
	if sc.PprofAddr != "" {
		args = append(args, "--pprof-addr", sc.PprofAddr)
	}
	args = append(args, sc.Args...)
	logf, err := os.OpenFile(sc.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	// Not CommandContext: the server is stopped with SIGTERM by stop, so
	// that it shuts down gracefully even when ctx has ended.
	cmd := exec.Command(sc.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s := &serverProc{BaseURL: "http://" + sc.Addr, spawned: true, cmd: cmd, exited: make(chan struct{}),
		dataDir: sc.DataDir, logPath: sc.LogPath, args: args}
	start := time.Now()
	if err := startOnCPUs(cmd, sc.CPUs); err != nil {
		return nil, 0, fmt.Errorf("presence-bench: start %s: %w", sc.Bin, err)
	}
	s.PID = cmd.Process.Pid
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	d, err := s.waitWebSocket(ctx, start, sc.AdminToken, 60*time.Second)
	if err != nil {
		s.stop(context.Background())
		return nil, 0, fmt.Errorf("%w\n%s", err, s.logTail(2048))
	}
	return s, d, nil
}

// waitWebSocket dials the server's WebSocket every millisecond until a
// handshake succeeds and hello arrives, and returns the time since start.
// An admin token opens an observer connection, which needs no user.
func (s *serverProc) waitWebSocket(ctx context.Context, start time.Time, token string, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	url := wsURL(s.BaseURL)
	for {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		ws, err := dialWS(actx, hc, url, token)
		if err == nil {
			_, err = readHello(actx, ws)
			d := time.Since(start)
			ws.CloseNow()
			acancel()
			if err == nil {
				return d, nil
			}
		} else {
			acancel()
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("presence-bench: no WebSocket after %s: %w", limit, err)
		case <-s.exited:
			return 0, fmt.Errorf("presence-bench: server exited: %v", s.waitErr)
		case <-time.After(time.Millisecond):
		}
	}
}

// stop ends a spawned server with SIGTERM, and SIGKILL when it takes
// longer than presenced's own bound of a shutdown (30 s) and a margin. It
// does nothing for a server not spawned.
func (s *serverProc) stop(ctx context.Context) error {
	if s == nil || !s.spawned {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(35 * time.Second)
	defer t.Stop()
	select {
	case <-s.exited:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	return errors.New("presence-bench: server killed after SIGTERM timed out")
}

// logTail returns the last n bytes of a spawned server's log.
func (s *serverProc) logTail(n int64) string {
	if s == nil || s.logPath == "" {
		return ""
	}
	f, err := os.Open(s.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func wsURL(base string) string {
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		return "wss://" + rest + "/v1/ws"
	}
	return "ws://" + strings.TrimPrefix(base, "http://") + "/v1/ws"
}

// dialWS opens a WebSocket of the presence protocol with a bearer token.
func dialWS(ctx context.Context, hc *http.Client, url, token string) (*websocket.Conn, error) {
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:   hc,
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
		Subprotocols: []string{protocol.Subprotocol},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake: HTTP %d", resp.StatusCode)
		}
		return nil, err
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.CloseNow()
		return nil, fmt.Errorf("server selected subprotocol %q", ws.Subprotocol())
	}
	ws.SetReadLimit(64 << 20) // snapshots of big groups
	return ws, nil
}

// readHello reads the first frame, which must be hello.
func readHello(ctx context.Context, ws *websocket.Conn) (protocol.Hello, error) {
	_, b, err := ws.Read(ctx)
	if err != nil {
		return protocol.Hello{}, err
	}
	f, err := protocol.DecodeServerFrame(b)
	if err != nil {
		return protocol.Hello{}, err
	}
	if f.Op != protocol.OpHello {
		return protocol.Hello{}, fmt.Errorf("%w: %s before hello", errFrame, f.Op)
	}
	return f.Hello(), nil
}

// restClient calls the server's REST API with the admin token.
type restClient struct {
	base  string
	token string
	hc    *http.Client
}

func newRESTClient(base, token string, conns int) *restClient {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: 30 * time.Second}
	return &restClient{base: base, token: token, hc: &http.Client{Transport: tr}}
}

func (c *restClient) close() { c.hc.CloseIdleConnections() }

// do sends a request and returns the body of a 2xx answer.
func (c *restClient) do(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(truncateBytes(b, 300)))
	}
	return b, nil
}

func truncateBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// scrapeMetrics reads the server's Prometheus metrics (metrics.go).
func (c *restClient) scrapeMetrics(ctx context.Context) (promMetrics, error) {
	b, err := c.do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	return parseMetrics(b)
}

// saveProfile fetches a pprof profile from addr (host:port) into file.
func saveProfile(ctx context.Context, addr, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: HTTP %d", path, resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
