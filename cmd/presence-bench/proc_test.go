package main

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := []byte("1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200 0 0\n")
	d, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if d != 3*time.Second {
		t.Fatalf("cpu %v, want 3s", d)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Fatal("short line accepted")
	}
}

func TestProcSelf(t *testing.T) {
	rss, err := procRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("rss %d %v", rss, err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := procRSS(0); !errors.Is(err, errNoPID) {
		t.Fatalf("pid 0: %v", err)
	}
}

func TestScanServerLog(t *testing.T) {
	path := t.TempDir() + "/presenced.log"
	earlier := `{"level":"error","msg":"from an earlier run"}` + "\n"
	lines := earlier +
		`{"level":"info","msg":"ready","http":"127.0.0.1:1"}` + "\n" +
		`{"level":"error","msg":"Filestore Critical write error: too many open files"}` + "\n" +
		`{"level":"warn","msg":"session not created","error":"context canceled"}` + "\n" +
		`{"level":"warn","msg":"session not created","error":"context canceled"}` + "\n" +
		`{"level":"info","logger":"http","msg":"http: Accept error: accept tcp 127.0.0.1:8080: too many open files; retrying in 5ms"}` + "\n" +
		"presenced is running\n"
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	got := scanServerLog(path, int64(len(earlier)))
	want := map[string]int{
		"error: Filestore Critical write error: too many open files":                      1,
		"warn: session not created: context canceled":                                     2,
		"info: http: Accept error: accept tcp ADDR: too many open files; retrying in 5ms": 1,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
