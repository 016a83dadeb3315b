package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux this tool runs on; Go cannot ask sysconf without
// cgo.
const clockTicks = 100

// errNoPID is returned when no server process is known to measure.
var errNoPID = errors.New("presence-bench: no server pid (use --spawn or --server-pid)")

// procRSS returns the resident set size of process pid in bytes, from
// /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	if pid <= 0 {
		return 0, errNoPID
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("presence-bench: odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("presence-bench: no VmRSS for pid %d", pid)
}

// procCPU returns the user plus system CPU time of process pid (all its
// threads), from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errNoPID
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a stat line.
// The command name, field 2, may hold spaces, so fields are counted after
// its closing parenthesis.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("presence-bench: malformed /proc stat")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("presence-bench: short /proc stat")
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// cpuOf sums the CPU time of several processes, skipping those that have
// gone.
func cpuOf(pids ...int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		if d, err := procCPU(p); err == nil {
			total += d
		}
	}
	return total
}
