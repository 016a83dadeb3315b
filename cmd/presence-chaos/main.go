package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/presenced/presenced/internal/chaos"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "presence-chaos:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("presence-chaos", flag.ContinueOnError)
	presenced := fs.String("presenced", "", "prebuilt presenced binary (default: build ./cmd/presenced)")
	natsServer := fs.String("nats-server", "", "prebuilt nats-server (default: build it from the module cache)")
	dir := fs.String("dir", "", "directory for binaries, data and logs (default: a temporary one, kept on failure)")
	extra := fs.String("flags", "", "extra presenced flags, space-separated")
	match := fs.String("run", "", "run only the scenarios whose name matches this regular expression")
	list := fs.Bool("list", false, "list the scenarios and exit")
	timeout := fs.Duration("timeout", 15*time.Minute, "stop after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	re, err := regexp.Compile(*match)
	if err != nil {
		return err
	}
	var scenarios []chaos.Scenario
	for _, sc := range chaos.Scenarios() {
		if re.MatchString(sc.Name) {
			scenarios = append(scenarios, sc)
		}
	}
	if *list {
		for _, sc := range scenarios {
			fmt.Printf("%-22s %s\n", sc.Name, sc.About)
		}
		return nil
	}
	if len(scenarios) == 0 {
		return fmt.Errorf("no scenario matches %q", *match)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	s, err := chaos.NewSuite(ctx, chaos.Config{
		Presenced: *presenced, NATSServer: *natsServer, Dir: *dir,
		Flags: strings.Fields(*extra), Logf: logf,
	})
	if err != nil {
		return err
	}
	defer s.Close()

	start := time.Now()
	var rows []chaos.Row
	failed := 0
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		row := s.Run(ctx, sc)
		rows = append(rows, row)
		if !row.Passed() {
			failed++
		}
		logf("%s: %d goals missed, %s", sc.Name, len(row.Failures), row.Took.Round(time.Second))
	}
	fmt.Printf("\npresence-chaos: %d scenarios in %s, logs in %s\n\n", len(rows), time.Since(start).Round(time.Second), s.Dir())
	chaos.Table(os.Stdout, rows)
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios missed goals", failed, len(rows))
	}
	return ctx.Err()
}
