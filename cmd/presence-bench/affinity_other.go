//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

var errNoAffinity = errors.New("presence-bench: CPU pinning (--bench-cpus, --server-cpus) needs Linux")

func pinSelf(cpus CPUList) error {
	if len(cpus) == 0 {
		return nil
	}
	return errNoAffinity
}

func startOnCPUs(cmd *exec.Cmd, cpus CPUList) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	return errNoAffinity
}

func threadCPUs() (string, error) { return "", errNoAffinity }
