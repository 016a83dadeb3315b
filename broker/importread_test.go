package broker

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestImportReadStopsAfterADrain stops an import's body reader while no
// read waits, as a shutdown does while the import applies the lines it
// read: the next read must end at once. Before, the read set its own
// deadline over the shutdown's and waited for the client for importIdle,
// so a node shutting down held the import until the HTTP server's
// shutdown gave up, and the client got a cut answer instead of the lines
// applied (TestImportStopsWhenTheNodeShutsDown failed so on a loaded
// machine).
func TestImportReadStopsAfterADrain(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	b := &idleReader{r: server, rc: server}
	b.stop()
	done := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 16))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after stop: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read after the import was stopped waited for the client")
	}
}
