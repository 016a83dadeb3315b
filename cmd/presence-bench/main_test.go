package main

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain lets the test binary serve as a worker process (Run re-executes
// os.Executable(), which under go test is this binary), removes the
// presenced binary the tests built, and checks for leaked goroutines.
func TestMain(m *testing.M) {
	if isWorker() {
		os.Exit(workerMain())
	}
	code := m.Run()
	removePresenced()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
