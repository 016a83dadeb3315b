package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestConfigPrecedence: a flag beats the environment, which beats the file.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.conf")
	os.WriteFile(file, []byte("# comment\nhttp-addr 127.0.0.1:1111\ngrace 9s\ndata-dir /from/file\n"), 0o600)
	t.Setenv("PRESENCED_GRACE", "7s")
	t.Setenv("PRESENCED_DATA_DIR", "/from/env")
	cfg, _, err := loadConfig([]string{"--config", file, "--data-dir", "/from/flag"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:1111" || cfg.Grace != 7*time.Second || cfg.DataDir != "/from/flag" {
		t.Fatalf("precedence: http %q grace %v data %q", cfg.HTTPAddr, cfg.Grace, cfg.DataDir)
	}
	if _, _, err := loadConfig([]string{"--no-such-flag"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
