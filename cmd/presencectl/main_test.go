package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"go.uber.org/zap/zaptest"
)

const admin = "ctl-test-admin-token-0123456789"

func TestPresencectl(t *testing.T) {
	s, err := broker.New(broker.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminToken: admin, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	base := broker.BaseURL(s.Addr())
	ctl := func(args ...string) (string, error) {
		var out, errw bytes.Buffer
		err := run(append([]string{"--url", base, "--token", admin}, args...), &out, &errw)
		return out.String(), err
	}

	file := filepath.Join(t.TempDir(), "in.ndjson")
	os.WriteFile(file, []byte(`{"kind":"user","id":"a","username":"a"}
{"kind":"user","id":"b","username":"b"}
{"kind":"group","id":"g","name":"Group G"}
{"kind":"member","groupId":"g","userId":"a","role":"owner"}
{"kind":"member","groupId":"g","userId":"b"}
`), 0o600)
	out, err := ctl("import", file)
	if err != nil || !strings.Contains(out, "created 5") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err = ctl("import", file)
	if err != nil || !strings.Contains(out, "unchanged 5") {
		t.Fatalf("re-import: %v\n%s", err, out)
	}
	out, err = ctl("groups")
	if err != nil || !strings.Contains(out, "Group G") {
		t.Fatalf("groups: %v\n%s", err, out)
	}
	out, err = ctl("members", "g")
	if err != nil || !regexp.MustCompile(`(?m)^a\s+owner`).MatchString(out) || !regexp.MustCompile(`(?m)^b\s+member`).MatchString(out) {
		t.Fatalf("members: %v\n%s", err, out)
	}
	out, err = ctl("token", "create", "--scopes", "connect", "--user", "a", "--name", "web")
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	id := regexp.MustCompile(`id:\s+(\S+)`).FindStringSubmatch(out)[1]
	out, err = ctl("token", "list")
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	if _, err := ctl("token", "revoke", id); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := ctl("token", "revoke", id); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := ctl("members", "nope"); err == nil {
		t.Fatal("members of unknown group: no error")
	}
}
