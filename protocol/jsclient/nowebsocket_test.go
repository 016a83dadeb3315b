package jsclient

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNoWebSocket runs the client where there is no global WebSocket (Node
// 20 without --experimental-websocket): it says what to do about it.
func TestNoWebSocket(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	dir := t.TempDir()
	script := `import { connect, PresenceClient } from "./client.mjs";
delete globalThis.WebSocket; // Node 22+ has one
try {
  new PresenceClient("ws://127.0.0.1:1/v1/ws");
  console.log("constructed");
} catch (e) {
  console.log(e.name + ": " + e.message);
}
await connect("ws://127.0.0.1:1/v1/ws").then(() => console.log("connected"), (e) => console.log(e.name + ": " + e.message));
`
	for name, data := range map[string][]byte{"client.mjs": Source, "nows.mjs": []byte(script)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, filepath.Join(dir, "nows.mjs")).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("node said:\n%s", out)
	}
	for _, line := range lines {
		for _, want := range []string{"TypeError: ", "no WebSocket", "--experimental-websocket", "options.WebSocket"} {
			if !strings.Contains(line, want) {
				t.Errorf("%q does not say %q", line, want)
			}
		}
	}
}
