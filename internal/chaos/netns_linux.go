//go:build linux

package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/var/run/netns"

// runIn runs fn on an OS thread that joined the named network namespace.
// Sockets fn creates belong to that namespace for good, whichever thread
// later uses them. The thread is never handed back to the scheduler: the
// goroutine exits while still locked, which ends the thread.
func runIn(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join(netnsDir, ns))
		if err != nil {
			errc <- fmt.Errorf("chaos: namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("chaos: setns %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}
