package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if isWorker() {
		os.Exit(workerMain())
	}
	os.Exit(cli(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the command line and returns the exit code: 0 when the run
// completed (targets may still be missed: see the report), 1 when it
// failed, 2 for a bad command line.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg, args, stderr)
	if rep != nil {
		rep.WriteTable(stdout)
		if cfg.JSONPath != "" {
			if werr := rep.WriteJSON(cfg.JSONPath); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
