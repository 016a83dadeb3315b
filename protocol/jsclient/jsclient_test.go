package jsclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/presenced/presenced/protocol"
	"github.com/presenced/presenced/protocol/internal/fakeserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSourceExports checks that the embedded module exports the documented
// names and that its constants match package protocol.
func TestSourceExports(t *testing.T) {
	src := string(Source)
	if len(src) == 0 {
		t.Fatal("Source is empty")
	}
	for _, decl := range []string{
		"export const SUBPROTOCOL = " + strconv.Quote(protocol.Subprotocol) + ";",
		"export const VERSION = " + strconv.Itoa(protocol.Version) + ";",
		"export const Status = ",
		"export const ErrorCode = ",
		"export const CloseCode = ",
		"export class PresenceError extends Error",
		"export async function connect(url, options = {})",
		"export class PresenceClient extends EventTarget",
	} {
		if !strings.Contains(src, decl) {
			t.Errorf("client.js lacks %q", decl)
		}
	}
	// The methods documented in the header exist.
	for _, m := range []string{"connect()", "on(type, fn)", "subscribe(group)", "subscribeCounts(group)",
		"unsubscribe(group)", `setStatus(status, text = "", expiresIn = 0)`, "query(users)",
		"watchCounts(groups = [])", "unwatchCounts()", "ping()", "refresh(token)", "close()",
		"members(group)", "counts(group)", "groups()", "get hello()", "get reconnects()", "get connected()"} {
		if !regexp.MustCompile(`(?m)^  (async )?` + regexp.QuoteMeta(m) + ` \{`).MatchString(src) {
			t.Errorf("client.js has no method %s", m)
		}
	}
	for _, st := range []protocol.Status{protocol.StatusOnline, protocol.StatusAway, protocol.StatusBusy, protocol.StatusOffline} {
		if !strings.Contains(src, strings.ToUpper(string(st))+`: "`+string(st)+`"`) {
			t.Errorf("client.js Status lacks %s", st)
		}
	}
	for _, code := range []protocol.ErrorCode{protocol.CodeBadRequest, protocol.CodeUnknownOp, protocol.CodeUnauthorized,
		protocol.CodeTokenExpired, protocol.CodeForbidden, protocol.CodeNotFound, protocol.CodeRateLimited,
		protocol.CodeTooManySubscriptions, protocol.CodeFrameTooLarge, protocol.CodeInternal} {
		if !strings.Contains(src, strings.ToUpper(string(code))+`: "`+string(code)+`"`) {
			t.Errorf("client.js ErrorCode lacks %s", code)
		}
	}
	for name, code := range map[string]int{"NORMAL": protocol.CloseNormal, "GOING_AWAY": protocol.CloseGoingAway,
		"POLICY": protocol.ClosePolicy, "FRAME_TOO_BIG": protocol.CloseFrameTooBig,
		"TOKEN_EXPIRED": protocol.CloseTokenExpired, "UNAUTHORIZED": protocol.CloseUnauthorized,
		"RATE_LIMITED": protocol.CloseRateLimited, "SLOW_CONSUMER": protocol.CloseSlowConsumer,
		"IDLE_TIMEOUT": protocol.CloseIdleTimeout, "PROTOCOL_ERROR": protocol.CloseProtocolError} {
		if !strings.Contains(src, name+": "+strconv.Itoa(code)+",") {
			t.Errorf("client.js CloseCode lacks %s: %d", name, code)
		}
	}
}

// nodeWithWebSocket returns the node command line that has a global
// WebSocket (Node 22+, or Node 20/21 with --experimental-websocket). Without
// one the test skips on a developer's machine and fails in CI (CI set),
// where .ci/run installs Node.
func nodeWithWebSocket(t *testing.T) []string {
	skip := func(why string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the JS client's test: %s", why)
		}
		t.Skip(why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node not installed")
	}
	for _, args := range [][]string{{node}, {node, "--experimental-websocket"}} {
		check := append(append([]string(nil), args...), "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)")
		if exec.Command(check[0], check[1:]...).Run() == nil {
			return args
		}
	}
	skip("node has no WebSocket")
	return nil
}

func member(user string, st protocol.Status) protocol.Member {
	return protocol.Member{User: user, Status: st, Since: 1795000000000}
}

// TestNodeEndToEnd runs testdata/e2e.mjs under node against the fake server:
// handshake with the bearer subprotocol, errors, snapshot, delta, forced
// disconnect with missed changes, resume, correlated requests, close.
func TestNodeEndToEnd(t *testing.T) {
	node := nodeWithWebSocket(t)
	s := fakeserver.Start(t, fakeserver.Config{Tokens: map[string]string{"t1": "alice"}, Forbidden: []string{"secret"}})
	s.Change("g1", member("u1", protocol.StatusOnline))
	s.Change("g1", member("u2", protocol.StatusOnline))
	s.Change("g1", member("u3", protocol.StatusAway))
	s.Change("g1", member("alice", protocol.StatusOnline))
	s.Change("g1", protocol.Member{User: "alice", Status: protocol.StatusOffline, Removed: true})
	s.Change("big", member("b1", protocol.StatusOnline))
	s.CreateGroup("secret")

	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join("testdata", "e2e.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"client.mjs": Source, "e2e.mjs": script} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node[0], append(node[1:], filepath.Join(dir, "e2e.mjs"))...)
	cmd.Env = append(os.Environ(), "PRESENCE_URL="+s.URL())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	step := func(want string) map[string]json.RawMessage {
		t.Helper()
		if !lines.Scan() {
			io.Copy(io.Discard, stdout)
			cmd.Wait()
			t.Fatalf("node stopped before step %q: %v\n%s", want, lines.Err(), stderr.String())
		}
		var msg map[string]json.RawMessage
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil || string(msg["step"]) != strconv.Quote(want) {
			t.Fatalf("node said %s, want step %q (%v)", lines.Bytes(), want, err)
		}
		return msg
	}
	answer := func(line string) {
		if _, err := fmt.Fprintln(stdin, line); err != nil {
			t.Fatal(err)
		}
	}

	step("subscribed")
	live := s.Change("g1", member("u2", protocol.StatusBusy))
	answer("changed")
	step("delta")
	var missed []protocol.Member
	s.Disconnect(0, func(b *fakeserver.Batch) {
		for _, m := range []protocol.Member{
			member("u1", protocol.StatusAway),
			{User: "u3", Status: protocol.StatusOffline, Since: 1795000000000, Removed: true},
			member("u4", protocol.StatusOnline),
			member("alice", protocol.StatusOnline),
		} {
			m.Rev = b.Change("g1", m)
			missed = append(missed, m)
		}
		b.Change("big", member("b2", protocol.StatusOnline))
	})
	answer("disconnected")
	step("ready for a pushed snapshot")
	s.PushSnapshot("g1", "e9")
	answer("pushed")
	done := step("done")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}

	var events []struct {
		Type    string
		Group   string
		Fresh   bool
		Changes []protocol.Member
	}
	if err := json.Unmarshal(done["events"], &events); err != nil {
		t.Fatal(err)
	}
	var types []string
	var deltas, resumed [][]protocol.Member
	for _, ev := range events {
		types = append(types, ev.Type)
		switch ev.Type {
		case "delta":
			deltas = append(deltas, ev.Changes)
		case "resumed":
			resumed = append(resumed, ev.Changes)
		}
	}
	wantTypes := []string{"snapshot", "counts", "delta", "disconnected", "connected", "resumed", "counts", "delta", "snapshot"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("events %v\nwant %v", types, wantTypes)
	}
	if len(deltas) != 2 || len(deltas[0]) != 1 || deltas[0][0].User != "u2" || deltas[0][0].Rev != live {
		t.Errorf("first delta %+v, want u2 at rev %d", deltas, live)
	}
	if len(resumed) != 1 || !reflect.DeepEqual(resumed[0], missed) {
		t.Errorf("resumed changes %+v\nwant exactly the missed %+v", resumed, missed)
	}
	var members []protocol.Member
	if err := json.Unmarshal(done["members"], &members); err != nil {
		t.Fatal(err)
	}
	for i := range members {
		members[i].Rev = 0
	}
	if want := s.Members("g1"); !reflect.DeepEqual(members, want) {
		t.Errorf("members(g1) = %+v\nserver has %+v", members, want)
	}
	if string(done["reconnects"]) != "1" {
		t.Errorf("reconnects = %s", done["reconnects"])
	}
	hs := s.Handshakes()
	if len(hs) != 2 {
		t.Fatalf("%d handshakes", len(hs))
	}
	for _, h := range hs {
		if h.Token != "t1" || h.TokenVia != "subprotocol" || h.Device != "web" || h.Client != "e2e/1" {
			t.Errorf("handshake %+v", h)
		}
	}
}
