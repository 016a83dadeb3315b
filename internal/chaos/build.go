package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the directory of the go.mod that governs dir.
func ModuleRoot(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("chaos: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == "/dev/null" {
		return "", errors.New("chaos: not inside a Go module; pass the presenced binary instead")
	}
	return filepath.Dir(mod), nil
}

// buildPresenced builds ./cmd/presenced of the module at root into out.
func buildPresenced(ctx context.Context, root, out string) error {
	return goBuild(ctx, root, out, "./cmd/presenced")
}

// buildNATSServer builds nats-server from the module cache: it is a
// dependency of the module at root, so no download is needed.
func buildNATSServer(ctx context.Context, root, out string) error {
	return goBuild(ctx, root, out, "github.com/nats-io/nats-server/v2")
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chaos: go build %s: %v\n%s", pkg, err, buf.Bytes())
	}
	return nil
}
