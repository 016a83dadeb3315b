package main

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]string{
		"":            "",
		"  ":          "",
		"0":           "0",
		"1":           "1",
		"0-1":         "0-1",
		"0,2-3":       "0,2-3",
		"3,0-1,2":     "0-3",
		"5,5,4-5":     "4-5",
		"0-0":         "0",
		"7,1,3":       "1,3,7",
		"0,2,4-6,9":   "0,2,4-6,9",
		" 0-1\n":      "0-1",
		"1023":        "1023",
		"01":          "1",
		"1022-1023,0": "0,1022-1023",
	} {
		l, err := parseCPUList(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := l.String(); got != want {
			t.Errorf("%q: got %q (%v), want %q", in, got, []int(l), want)
		}
		// The canonical form reads back as the same list.
		if back, err := parseCPUList(l.String()); err != nil || !slices.Equal(back, l) {
			t.Errorf("%q: %q reads back as %v, %v", in, l.String(), back, err)
		}
	}
	if l, _ := parseCPUList("0,2-4"); !slices.Equal(l, CPUList{0, 2, 3, 4}) {
		t.Errorf("0,2-4: %v", l)
	}
	for _, in := range []string{"a", "-1", "1-", "-", "3-1", "1,,2", ",1", "1,", "1-2-3", "1 2", "1, 2",
		"0x1", "+1", "1.5", "1024", "0-1024", "99999999999999999999", "0:2", "1-a"} {
		l, err := parseCPUList(in)
		if !errors.Is(err, errConfig) {
			t.Errorf("%q: got %v, %v; want a config error", in, l, err)
		}
	}
}

func TestCPUListFlags(t *testing.T) {
	c, err := parseConfig([]string{"--spawn", "--server-cpus", "0", "--bench-cpus", "1-3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ServerCPUs, CPUList{0}) || !slices.Equal(c.BenchCPUs, CPUList{1, 2, 3}) {
		t.Fatalf("server %v bench %v", c.ServerCPUs, c.BenchCPUs)
	}
	if _, err := c.withDefaults(); err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfig([]string{"--spawn", "--server-cpus", "0-"}, io.Discard); err == nil {
		t.Fatal("bad --server-cpus accepted")
	}
	if _, err := parseConfig([]string{"--spawn", "--bench-cpus", "x"}, io.Discard); err == nil {
		t.Fatal("bad --bench-cpus accepted")
	}
	if l := (CPUList{0, 1, 2}).overlap(CPUList{2, 3}); !slices.Equal(l, CPUList{2}) {
		t.Fatalf("overlap %v", l)
	}
}

// allowedCPUs is this process's CPU list, from /proc.
func allowedCPUs(t *testing.T) CPUList {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("CPU pinning is Linux only")
	}
	s, err := procCPUsAllowed(0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseCPUList(s)
	if err != nil || len(l) == 0 {
		t.Fatalf("Cpus_allowed_list %q: %v", s, err)
	}
	return l
}

// TestPinSelf pins the test process to the CPUs it already has, which
// must succeed and change nothing.
func TestPinSelf(t *testing.T) {
	have := allowedCPUs(t)
	if err := pinSelf(have); err != nil {
		t.Fatal(err)
	}
	if after := allowedCPUs(t); !slices.Equal(after, have) {
		t.Fatalf("CPUs %s after pinning to %s", after, have)
	}
	if err := pinSelf(nil); err != nil {
		t.Fatal(err)
	}
}

// TestStartOnCPUs starts a child on one CPU, which it must have from its
// start, and checks that the forking thread got its own mask back.
func TestStartOnCPUs(t *testing.T) {
	have := allowedCPUs(t)
	one := have[len(have)-1:]
	runtime.LockOSThread() // so that the thread checked is the one that forked
	defer runtime.UnlockOSThread()
	before, err := threadCPUs()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("cat", "/proc/self/status")
	cmd.Stdout = &out
	if err := startOnCPUs(cmd, one); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Cpus_allowed_list:\t"+one.String()+"\n") {
		t.Fatalf("child on %s:\n%s", one, out.String())
	}
	after, err := threadCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("thread's CPUs %s before, %s after", before, after)
	}
	// No CPUs: a plain start.
	out.Reset()
	cmd = exec.Command("cat", "/proc/self/status")
	cmd.Stdout = &out
	if err := startOnCPUs(cmd, nil); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Cpus_allowed_list:\t"+before+"\n") {
		t.Fatalf("unpinned child, parent thread on %s:\n%s", before, out.String())
	}
}
