// Command presenced runs a presenced node. With no flags it embeds a
// nats-server with JetStream under ./data and serves HTTP on :8080.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/presenced/presenced/broker"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "presenced:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, fs, err := loadConfig(args)
	if err != nil {
		return err
	}
	log, err := newLogger(fs.Lookup("log-level").Value.String(), fs.Lookup("log-json").Value.String() == "true")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg.Logger = log

	srv, err := broker.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	printWelcome(srv)
	<-ctx.Done()
	stop() // a second signal ends the process at once
	log.Info("shutting down")
	timeout := srv.ShutdownTimeout()
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The node stops either way; what it could not write on the way out
	// (its sessions' grace, when the store has no quorum left) is said, and
	// the other nodes expire it. A step still running at the deadline (NATS
	// not answering) is abandoned: the process exits 1 saying which.
	if err := srv.Shutdown(sctx); errors.Is(err, broker.ErrStopUnfinished) {
		return fmt.Errorf("did not stop within %v (--shutdown-timeout): %w", timeout, err)
	} else if err != nil {
		log.Warn("shut down, but not everything was written", zap.Error(err))
	}
	return nil
}

// loadConfig reads options from flags, then PRESENCED_* environment
// variables, then the --config file, in that order of precedence.
func loadConfig(args []string) (broker.Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	build := broker.Flags(fs)
	if err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix("PRESENCED"),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(ff.PlainParser),
	); err != nil {
		return broker.Config{}, nil, err
	}
	cfg, err := build()
	return cfg, fs, err
}

func printWelcome(srv *broker.Server) {
	base := broker.BaseURL(srv.Addr())
	fmt.Printf("presenced is running\n  API:       %s/v1/\n  WebSocket: %s/v1/ws\n  Dashboard: %s/dashboard\n", base, wsURL(base), base)
	if u := srv.NATSClientURL(); u != "" {
		fmt.Printf("  NATS:      %s\n", u)
	}
	if tok := srv.FirstRunToken(); tok != "" {
		fmt.Printf("\nFirst run: an admin API token was created. It is shown only now; only its hash is stored.\n  %s\n\nTry: curl -H 'Authorization: Bearer %s' %s/v1/users\n\n", tok, tok, base)
	}
}

func wsURL(base string) string {
	if len(base) > 4 && base[:5] == "https" {
		return "wss" + base[5:]
	}
	return "ws" + base[4:]
}

// newLogger logs readable lines on a terminal and JSON otherwise.
func newLogger(level string, forceJSON bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	var cfg zap.Config
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && !forceJSON {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	} else {
		cfg = zap.NewProductionConfig()
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	return cfg.Build()
}
