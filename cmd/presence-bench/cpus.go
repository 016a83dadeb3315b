package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// maxCPU bounds the CPU numbers of a list: the affinity masks this tool
// passes to the kernel (unix.CPUSet) hold CPUs 0 to 1023.
const maxCPU = 1023

// CPUList is a set of CPU numbers, sorted and without repeats, written in
// the Linux CPU list syntax of taskset -c and /proc/<pid>/status
// (Cpus_allowed_list): "0", "0-1", "0,2-3". Empty means no pinning.
type CPUList []int

// parseCPUList reads a Linux CPU list: comma-separated CPU numbers and
// inclusive ranges LOW-HIGH. The empty string is the empty list.
func parseCPUList(s string) (CPUList, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	bad := func(why string) (CPUList, error) {
		return nil, fmt.Errorf("%w: CPU list %q: %s", errConfig, s, why)
	}
	num := func(v string) (int, bool) {
		// Digits only: no sign, no spaces, no hex.
		if v == "" || strings.TrimLeft(v, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.Atoi(v)
		return n, err == nil && n <= maxCPU
	}
	var out CPUList
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, ok := num(lo)
		if !ok {
			return bad(fmt.Sprintf("%q is not a CPU number from 0 to %d or a range LOW-HIGH", part, maxCPU))
		}
		b := a
		if isRange {
			if b, ok = num(hi); !ok || b < a {
				return bad(fmt.Sprintf("%q is not a range LOW-HIGH of CPUs from 0 to %d", part, maxCPU))
			}
		}
		for cpu := a; cpu <= b; cpu++ {
			out = append(out, cpu)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// String writes l in the canonical list syntax, with ranges for runs:
// [0 1 2 5] is "0-2,5".
func (l CPUList) String() string {
	var b strings.Builder
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(l[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(l[j]))
		}
		i = j + 1
	}
	return b.String()
}

// overlap returns the CPUs in both l and m.
func (l CPUList) overlap(m CPUList) CPUList {
	var out CPUList
	for _, c := range l {
		if slices.Contains(m, c) {
			out = append(out, c)
		}
	}
	return out
}

// cpuListFlag is a --server-cpus or --bench-cpus flag.
type cpuListFlag struct{ v *CPUList }

func (f cpuListFlag) String() string {
	if f.v == nil {
		return ""
	}
	return f.v.String()
}

func (f cpuListFlag) Set(s string) error {
	l, err := parseCPUList(s)
	if err != nil {
		return err
	}
	*f.v = l
	return nil
}

// procCPUsAllowed returns the CPUs process pid may run on, the
// Cpus_allowed_list of /proc/<pid>/status ("self" for pid 0), as the
// kernel writes it. It is the mask of the process's main thread.
func procCPUsAllowed(pid int) (string, error) {
	p := "/proc/self/status"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("Cpus_allowed_list:")); ok {
			return string(bytes.TrimSpace(rest)), nil
		}
	}
	return "", fmt.Errorf("presence-bench: no Cpus_allowed_list in %s", p)
}
