package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"go.uber.org/zap/zaptest"
)

// mainEnv makes the test binary run main instead of the tests, so that
// tests can check exit codes.
const mainEnv = "PRESENCECTL_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const admin = "ctl-test-admin-token-0123456789"

// startBroker runs a server with an empty data dir until the test ends and
// returns its URL.
func startBroker(t *testing.T, mod ...func(*broker.Config)) string {
	t.Helper()
	cfg := broker.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminToken: admin, Logger: zaptest.NewLogger(t)}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := broker.New(cfg)
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
	return broker.BaseURL(s.Addr())
}

// ctlAt returns a function that runs presencectl against base and returns
// its standard output and error output.
func ctlAt(base string) func(args ...string) (string, string, error) {
	return func(args ...string) (string, string, error) {
		var out, errw bytes.Buffer
		err := run(append([]string{"--url", base, "--token", admin}, args...), &out, &errw)
		return out.String(), errw.String(), err
	}
}

func TestPresencectl(t *testing.T) {
	ctl3 := ctlAt(startBroker(t))
	ctl := func(args ...string) (string, error) {
		out, _, err := ctl3(args...)
		return out, err
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

// runMain runs presencectl's main in a child process and returns its exit
// code and output.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1", "PRESENCED_URL=http://127.0.0.1:1")
	var out, errw bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errw
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errw.String()
}

// TestExitCodes: help that was asked for is no failure.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a substring; "" wants nothing
		stderr string
	}{
		{[]string{"--help"}, 0, "Commands:", ""},
		{[]string{"-h"}, 0, "Commands:", ""},
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"token", "create", "--help"}, 0, "-scopes", ""},
		{nil, 2, "", "Commands:"},
		{[]string{"--bogus"}, 1, "", "try --help"},
		{[]string{"frobnicate"}, 1, "", "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runMain(t, tc.args...)
			if code != tc.code || (tc.stdout == "") != (stdout == "") || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
		})
	}
}

// importLines returns n import lines over several batches: 10 groups, then
// users each followed by their membership.
func importLines(n int) []string {
	lines := make([]string, 0, n)
	for g := 0; g < 10 && len(lines) < n; g++ {
		lines = append(lines, fmt.Sprintf(`{"kind":"group","id":"g%d","name":"Group %d"}`, g, g))
	}
	for u := 0; len(lines) < n; u++ {
		lines = append(lines, fmt.Sprintf(`{"kind":"user","id":"u%d","username":"user%d"}`, u, u))
		if len(lines) < n {
			lines = append(lines, fmt.Sprintf(`{"kind":"member","groupId":"g%d","userId":"u%d"}`, u%10, u))
		}
	}
	return lines
}

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(name, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestImportLarge imports files of several batches through presencectl:
// every line is stored, a line over the limit fails alone, the bar counts
// lines, and a file over the server's import limit says which lines were
// applied so that importing the rest completes it.
func TestImportLarge(t *testing.T) {
	const n = 6000
	lines := importLines(n)

	t.Run("whole", func(t *testing.T) {
		ctl := ctlAt(startBroker(t))
		out, bar, err := ctl("import", writeLines(t, lines))
		if err != nil || !strings.Contains(out, fmt.Sprintf("lines %d, created %d,", n, n)) {
			t.Fatalf("import: %v\n%s", err, out)
		}
		if !strings.Contains(bar, fmt.Sprintf("/%d, ", n)) || !strings.Contains(bar, "lines/") || strings.Contains(bar, "B/s") {
			t.Fatalf("the bar does not count lines: %q", bar)
		}
		out, _, err = ctl("import", writeLines(t, lines))
		if err != nil || !strings.Contains(out, fmt.Sprintf("unchanged %d,", n)) {
			t.Fatalf("re-import: %v\n%s", err, out)
		}
	})

	t.Run("long line", func(t *testing.T) {
		ctl := ctlAt(startBroker(t))
		long := append([]string(nil), lines...)
		long[2999] = `{"kind":"member","groupId":"g1","userId":"` + strings.Repeat("x", 70_000) + `"}`
		out, _, err := ctl("import", writeLines(t, long))
		if err == nil || !strings.Contains(out, fmt.Sprintf("lines %d, created %d, updated 0, unchanged 0, failed 1", n, n-1)) ||
			!strings.Contains(out, "line 3000: line longer than 65536 bytes") {
			t.Fatalf("import: %v\n%s", err, out)
		}
	})

	t.Run("over the limit", func(t *testing.T) {
		ctl := ctlAt(startBroker(t, func(c *broker.Config) { c.Limits.MaxImportBytes = 150_000 }))
		_, _, err := ctl("import", writeLines(t, lines))
		m := regexp.MustCompile(`too_large: lines 1–(\d+) applied; the rest was not read`).FindStringSubmatch(fmt.Sprint(err))
		if m == nil {
			t.Fatalf("import over the limit: %v", err)
		}
		var applied int
		fmt.Sscan(m[1], &applied)
		out, _, err := ctl("import", writeLines(t, lines[applied:]))
		if err != nil || !strings.Contains(out, fmt.Sprintf("created %d,", n-applied)) {
			t.Fatalf("importing lines %d–%d: %v\n%s", applied+1, n, err, out)
		}
		out, _, err = ctl("import", writeLines(t, lines[:applied]))
		if err != nil || !strings.Contains(out, fmt.Sprintf("unchanged %d,", applied)) {
			t.Fatalf("lines 1–%d were not all applied: %v\n%s", applied, err, out)
		}
	})
}

// TestExportImport exports a membership with every kind of record, custom
// roles, inactive users, bots and gaps in the numeric aliases, imports it
// into an empty server and exports that: the two exports are the same.
func TestExportImport(t *testing.T) {
	baseA := startBroker(t)
	ctlA := ctlAt(baseA)
	in := writeLines(t, []string{
		`{"kind":"role","id":"sales","name":"Sales","scope":"Users","description":"sells"}`,
		`{"kind":"role","id":"oncall","name":"On call","scope":"Subscriptions"}`,
		`{"kind":"user","id":"alice","username":"alice","name":"Alice","avatarUrl":"https://example.com/a.png","utcOffset":5.5,"roles":["sales","admin"]}`,
		`{"kind":"user","id":"bot1","username":"bot1","type":"bot"}`,
		`{"kind":"user","id":"carol","username":"carol","active":false}`,
		`{"kind":"user","id":"dave","username":"dave"}`,
		`{"kind":"group","id":"g1","name":"Group 1"}`,
		`{"kind":"group","id":"g0","name":"Group 0","type":"public"}`,
		`{"kind":"member","groupId":"g1","userId":"alice","role":"owner","roles":["oncall","leader"]}`,
		`{"kind":"member","groupId":"g1","userId":"carol","role":"moderator"}`,
		`{"kind":"member","groupId":"g0","userId":"bot1"}`,
		`{"kind":"member","groupId":"g0","userId":"dave"}`,
	})
	if out, _, err := ctlA("import", in); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	// A deleted user leaves a gap in the numbers; a user created later
	// comes after it.
	rest(t, "DELETE", baseA+"/v1/users/dave", nil)
	rest(t, "POST", baseA+"/v1/users", map[string]any{"id": "erin", "username": "erin"})
	rest(t, "PUT", baseA+"/v1/groups/g0/members/erin", nil)
	if _, _, err := ctlA("token", "create", "--scopes", "connect", "--user", "alice"); err != nil {
		t.Fatal(err)
	}

	fileA := filepath.Join(t.TempDir(), "a.ndjson")
	out, _, err := ctlA("export", fileA)
	if err != nil || !strings.Contains(out, "exported 12 lines: 2 roles, 4 users, 2 groups, 4 members") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	a, err := os.ReadFile(fileA)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hash", "token", admin, `"seq":4`} {
		if bytes.Contains(a, []byte(secret)) {
			t.Fatalf("the export holds %q:\n%s", secret, a)
		}
	}
	if out, _, err := ctlA("import", fileA); err != nil || !strings.Contains(out, "unchanged 12,") {
		t.Fatalf("re-import into the same server: %v\n%s", err, out)
	}

	baseB := startBroker(t)
	ctlB := ctlAt(baseB)
	if out, _, err := ctlB("import", fileA); err != nil || !strings.Contains(out, "created 12,") {
		t.Fatalf("import into an empty server: %v\n%s", err, out)
	}
	b, _, err := ctlB("export")
	if err != nil {
		t.Fatal(err)
	}
	if b != string(a) {
		t.Fatalf("export of the copy differs\nfirst:\n%s\ncopy:\n%s", a, b)
	}
	// New numbers on the copy come after the imported ones.
	var u struct{ Seq int64 }
	rest(t, "POST", baseB+"/v1/users", map[string]any{"id": "frank", "username": "frank"})
	rest(t, "GET", baseB+"/v1/users/frank", &u)
	if u.Seq <= 5 {
		t.Fatalf("a user created after the import has seq %d, not above the imported 5", u.Seq)
	}
}

// rest calls the API as the admin; with a map body it is sent as JSON, with
// a pointer the answer is decoded into it.
func rest(t *testing.T, method, url string, v any) {
	t.Helper()
	var body *bytes.Reader
	if m, ok := v.(map[string]any); ok {
		b, _ := json.Marshal(m)
		body = bytes.NewReader(b)
		v = nil
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
}
