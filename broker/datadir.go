package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The data directory holds the embedded nats-server's JetStream store. Two
// servers on one store corrupt it, so a node locks the directory before it
// opens anything there, with a lock file that names its process; a second
// node exits at once saying who holds it.

// lockFile is the name of the lock in the data directory.
const lockFile = "presenced.lock"

// ErrDataDirLocked is returned by Start when another process holds the
// data directory.
var ErrDataDirLocked = errors.New("broker: data directory in use")

// lockDataDir creates dir if needed, checks that it is writable and takes
// its lock. The lock holds while the returned file is open; the kernel
// releases it when the process dies, however it dies.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("broker: data directory %s is not writable: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by process %s (%s); stop it first, or use another --data-dir",
				ErrDataDirLocked, dir, strings.TrimSpace(string(holder)), path)
		}
		return nil, fmt.Errorf("broker: locking data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("broker: data directory %s is not writable: %w", dir, err)
		}
	}
	return f, nil
}
