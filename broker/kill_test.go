package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
)

const childEnv = "PRESENCED_TEST_CHILD_DIR"

// runChild runs a server for TestKillKeepsAcknowledgedWrites in a child
// process, writes its address to a file and serves until killed.
func runChild() {
	dir := os.Getenv(childEnv)
	s, err := broker.New(broker.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", AdminToken: testAdminToken,
		WebhookAllowPrivate: true}) // webhook receivers of tests are on loopback
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tmp := filepath.Join(dir, "addr.tmp")
	_ = os.WriteFile(tmp, []byte(s.Addr()), 0o600)
	_ = os.Rename(tmp, filepath.Join(dir, "addr"))
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	<-ch
	os.Exit(0)
}

// startChildProcess runs a presenced node in a child process (runChild)
// on dir and returns it with its API's base URL.
func startChildProcess(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var addr string
	waitFor(t, 60*time.Second, "the child to start", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "addr"))
		addr = string(b)
		return err == nil
	})
	return cmd, broker.BaseURL(addr)
}

// TestKillKeepsAcknowledgedWrites writes users through a child process's
// API, kills it with SIGKILL in the middle of the writes, and checks that a
// new server on the same data sees every write that was acknowledged.
func TestKillKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	cmd, base := startChildProcess(t, dir)

	acked := make(chan string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 5 * time.Second}
		for i := 0; ; i++ {
			id := fmt.Sprintf("u%04d", i)
			req, _ := http.NewRequest("POST", base+"/v1/users", strings.NewReader(`{"id":"`+id+`","username":"`+id+`"}`))
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			resp, err := client.Do(req)
			if err != nil {
				return // the child is gone
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				acked <- id
			}
			if i == 999 {
				return
			}
		}
	}()
	// Kill after some writes were acknowledged, while others are in flight.
	var ids []string
	for len(ids) < 100 {
		ids = append(ids, <-acked)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	<-done
	close(acked)
	for id := range acked {
		ids = append(ids, id)
	}

	s := startServer(t, dir)
	for _, id := range ids {
		if _, ok := s.Store().Index().User(id); !ok {
			t.Fatalf("acknowledged user %s lost after SIGKILL (%d acknowledged)", id, len(ids))
		}
	}
	t.Logf("%d acknowledged writes survived SIGKILL", len(ids))
}
