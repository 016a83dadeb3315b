package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func (l CPUList) cpuSet() unix.CPUSet {
	var set unix.CPUSet
	for _, c := range l {
		set.Set(c)
	}
	return set
}

// pinSelf restricts every thread of this process to cpus. Threads (and
// child processes) made later inherit the mask of the thread making them,
// so once every thread is pinned the whole process stays pinned: the loop
// goes over /proc/self/task again until a pass finds no thread it had not
// pinned yet, to catch threads started while it ran.
func pinSelf(cpus CPUList) error {
	if len(cpus) == 0 {
		return nil
	}
	set := cpus.cpuSet()
	pinned := map[int]bool{}
	for pass := 0; ; pass++ {
		if pass == 100 {
			return errors.New("presence-bench: pin bench: threads keep appearing")
		}
		entries, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("presence-bench: pin bench: %w", err)
		}
		fresh := 0
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread has ended
				}
				return fmt.Errorf("presence-bench: pin bench to CPUs %s: %w%s", cpus, err, onlineHint())
			}
			pinned[tid] = true
			fresh++
		}
		if fresh == 0 {
			break
		}
	}
	// The Go runtime sized its scheduler for the CPUs it had at start;
	// make it look again unless GOMAXPROCS was chosen by hand.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.SetDefaultGOMAXPROCS()
	}
	return nil
}

// startOnCPUs starts cmd with its affinity set to cpus from its first
// instruction: Go forks a child from the thread calling cmd.Start, and the
// child inherits that thread's mask. So the calling goroutine locks its
// thread, gives the thread the mask, starts cmd and gives the thread its
// own mask back. With no cpus it is cmd.Start.
//
// The thread must not end instead of being restored: a child started with
// Pdeathsig gets its signal when the thread that forked it ends.
func startOnCPUs(cmd *exec.Cmd, cpus CPUList) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	set := cpus.cpuSet()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		return fmt.Errorf("read the thread's CPUs: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPUs %s: %w%s", cpus, err, onlineHint())
	}
	startErr := cmd.Start()
	if err := unix.SchedSetaffinity(0, &saved); err != nil {
		// This thread would run the bench's goroutines on the server's
		// CPUs; the run's figures would not be what they say.
		if startErr == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return fmt.Errorf("restore the thread's CPUs after the start: %w", err)
	}
	return startErr
}

// onlineHint names the CPUs online, for an error about a CPU list.
func onlineHint() string {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return ""
	}
	return " (CPUs online: " + strings.TrimSpace(string(b)) + ")"
}

// threadCPUs returns the CPU list of the calling thread.
func threadCPUs() (string, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "", err
	}
	var l CPUList
	for c := range maxCPU + 1 {
		if set.IsSet(c) {
			l = append(l, c)
		}
	}
	return l.String(), nil
}
