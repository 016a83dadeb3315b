package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

// state writes, through base's APIs, what someone stated: a backend
// source's status for users s00..s(n-1) and a manual status for s00 (by
// Rocket.Chat's users.setStatus), acknowledged each.
func state(t *testing.T, base string, n int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("s%02d", i)
		if st := call(t, "POST", base+"/v1/users", testAdminToken, map[string]any{"id": id, "username": id}, nil); st != http.StatusCreated {
			t.Fatalf("create %s: %d", id, st)
		}
		if st := call(t, "POST", base+"/v1/presence/status", testAdminToken,
			map[string]any{"user": id, "status": "busy", "text": "on a call", "source": "phone"}, nil); st != http.StatusOK {
			t.Fatalf("publish for %s: %d", id, st)
		}
	}
	var tok struct{ Token string }
	call(t, "POST", base+"/v1/tokens", testAdminToken, map[string]any{"userId": "s00", "scopes": []string{"connect"}}, &tok)
	req, _ := http.NewRequest("POST", base+"/api/v1/users.setStatus", bytes.NewBufferString(`{"status":"away","message":"back at 3"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-Id", "s00")
	req.Header.Set("X-Auth-Token", tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("users.setStatus: %d", resp.StatusCode)
	}
}

// checkStated checks on s that everything state wrote is still there.
func checkStated(t *testing.T, s *testServer, n int) {
	t.Helper()
	lost := 0
	for i := range n {
		us := s.Engine().Status(fmt.Sprintf("s%02d", i))
		if i > 0 && (us.Status != protocol.StatusBusy || us.Text != "on a call") {
			lost++
		}
	}
	m, ok := s.Engine().ManualOf("s00")
	if !ok || m.Status != protocol.StatusAway || m.Text != "back at 3" {
		t.Errorf("the manual status of s00: %+v %v", m, ok)
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged backend statuses lost", lost, n-1)
	}
}

// TestStatedPresenceSurvivesRestart: what someone stated (a backend
// source's status, a manual status) survives a restart, clean or by kill
// -9; sessions of connections rightly do not. Before, the presence bucket
// lived in memory and every one of them was gone.
func TestStatedPresenceSurvivesRestart(t *testing.T) {
	const n = 30
	t.Run("kill -9", func(t *testing.T) {
		dir := t.TempDir()
		cmd, base := startChildProcess(t, dir)
		state(t, base, n)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		checkStated(t, startServer(t, dir), n)
	})
	t.Run("clean", func(t *testing.T) {
		dir := t.TempDir()
		s := startServer(t, dir)
		state(t, s.URL, n)
		shutdown(t, s)
		checkStated(t, startServer(t, dir), n)
	})
}

func shutdown(t *testing.T, s *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
