package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// A worker is this same executable started with workerEnv=1: it holds up
// to MaxConnsPerWorker subscriber connections (one process may hold 20,000
// open files) and talks JSON lines with the parent on stdin and stdout.
const (
	workerEnv         = "PRESENCE_BENCH_WORKER"
	workerDeadlineEnv = "PRESENCE_BENCH_DEADLINE"   // unix ns after which a worker exits
	workerProfileEnv  = "PRESENCE_BENCH_CPUPROFILE" // file for the worker's own CPU profile
	MaxConnsPerWorker = 19000
)

// isWorker reports whether this process was started as a worker.
func isWorker() bool { return os.Getenv(workerEnv) == "1" }

// workerMain is the whole of a worker process; it returns the exit code.
// A worker ends when its parent closes stdin, sends close, or when its
// deadline passes, so that none outlives a run.
func workerMain() int {
	debug.SetGCPercent(400) // memory is plentiful, CPU is shared with the server
	if ns, err := strconv.ParseInt(os.Getenv(workerDeadlineEnv), 10, 64); err == nil {
		time.AfterFunc(time.Until(time.Unix(0, ns)), func() {
			fmt.Fprintln(os.Stderr, "presence-bench worker: deadline passed, exiting")
			os.Exit(3)
		})
	}
	stopProfile := func() {}
	if path := os.Getenv(workerProfileEnv); path != "" {
		f, err := os.Create(path)
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "presence-bench worker: no CPU profile:", err)
		} else {
			stopProfile = sync.OnceFunc(func() {
				pprof.StopCPUProfile()
				f.Close()
			})
		}
	}
	if err := runWorker(context.Background(), os.Stdin, os.Stdout, stopProfile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// workerProc is the parent's handle on one worker process.
type workerProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	enc     *json.Encoder
	replies chan reply // closed when the worker's stdout ends
	exited  chan struct{}
}

// workerPool is the worker processes of a run.
type workerPool []*workerProc

// startWorkers starts k workers that exit by themselves at deadline. With
// profile set, worker i writes its CPU profile to profile(i).
func startWorkers(k int, deadline time.Time, stderr io.Writer, profile func(i int) string) (workerPool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var pool workerPool
	for i := range k {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), workerEnv+"=1", workerDeadlineEnv+"="+strconv.FormatInt(deadline.UnixNano(), 10))
		if profile != nil {
			cmd.Env = append(cmd.Env, workerProfileEnv+"="+profile(i))
		}
		cmd.Stderr = stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, err1 := cmd.StdinPipe()
		out, err2 := cmd.StdoutPipe()
		if err := errors.Join(err1, err2); err != nil {
			pool.kill()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			pool.kill()
			return nil, fmt.Errorf("presence-bench: start worker: %w", err)
		}
		wp := &workerProc{cmd: cmd, in: in, enc: json.NewEncoder(in), replies: make(chan reply, 1), exited: make(chan struct{})}
		go func() {
			defer close(wp.replies)
			dec := json.NewDecoder(out)
			for {
				var r reply
				if err := dec.Decode(&r); err != nil {
					return
				}
				wp.replies <- r
			}
		}()
		go func() {
			_ = cmd.Wait()
			close(wp.exited)
		}()
		pool = append(pool, wp)
	}
	return pool, nil
}

// call sends cmds[i] to worker i and returns every worker's reply. A
// reply carrying an error is an error.
func (p workerPool) call(ctx context.Context, cmds []command) ([]reply, error) {
	if len(cmds) != len(p) {
		return nil, fmt.Errorf("presence-bench: %d commands for %d workers", len(cmds), len(p))
	}
	for i, wp := range p {
		if err := wp.enc.Encode(cmds[i]); err != nil {
			return nil, fmt.Errorf("presence-bench: worker %d: %w", i, err)
		}
	}
	out := make([]reply, len(p))
	var errs []error
	for i, wp := range p {
		select {
		case r, ok := <-wp.replies:
			if !ok {
				return nil, fmt.Errorf("presence-bench: worker %d ended during %s", i, cmds[i].Cmd)
			}
			if r.Err != "" {
				errs = append(errs, fmt.Errorf("worker %d: %s: %s", i, cmds[i].Cmd, r.Err))
			}
			out[i] = r
		case <-ctx.Done():
			return nil, fmt.Errorf("presence-bench: waiting for workers (%s): %w", cmds[i].Cmd, ctx.Err())
		}
	}
	return out, errors.Join(errs...)
}

// broadcast sends the same command to every worker.
func (p workerPool) broadcast(ctx context.Context, cmd command) ([]reply, error) {
	cmds := make([]command, len(p))
	for i := range cmds {
		cmds[i] = cmd
	}
	return p.call(ctx, cmds)
}

func (p workerPool) pids() []int {
	out := make([]int, len(p))
	for i, wp := range p {
		out[i] = wp.cmd.Process.Pid
	}
	return out
}

// close asks every worker to close its connections and exit, and kills
// those that do not within 15 seconds.
func (p workerPool) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, wp := range p {
		_ = wp.enc.Encode(command{Cmd: cmdClose})
		_ = wp.in.Close()
	}
	for _, wp := range p {
		select {
		case <-wp.exited:
		case <-ctx.Done():
			_ = wp.cmd.Process.Kill()
			<-wp.exited
		}
		for range wp.replies { // let the reading goroutine end
		}
	}
}

func (p workerPool) kill() {
	for _, wp := range p {
		_ = wp.cmd.Process.Kill()
		<-wp.exited
		for range wp.replies {
		}
	}
}
