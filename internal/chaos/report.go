package chaos

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is what one scenario measured.
type Row struct {
	Scenario string
	// Offline is the time until the users of a dead or cut-off node were
	// offline on every observer of the majority ("-" when no node was
	// lost).
	Offline string
	// FalseOfflines counts users connected to a live majority node whom a
	// majority observer saw offline.
	FalseOfflines string
	// Converge is the time until every reachable node served identical,
	// correct snapshots, after the fault (and after the heal or restart).
	Converge string
	// LostAcks counts writers whose last acknowledged status is missing
	// from the final state.
	LostAcks string
	Notes    []string
	// Failures are the goals the scenario missed; empty when it passed.
	Failures []string
	Took     time.Duration
}

func (r *Row) add(field *string, v string) {
	if *field == "" {
		*field = v
		return
	}
	*field += "; " + v
}

// note and fail keep each entry on one line of the table.
var oneLine = strings.NewReplacer("\n", "; ")

func (r *Row) note(format string, args ...any) {
	r.Notes = append(r.Notes, oneLine.Replace(fmt.Sprintf(format, args...)))
}

func (r *Row) fail(format string, args ...any) {
	r.Failures = append(r.Failures, oneLine.Replace(fmt.Sprintf(format, args...)))
}

// Passed reports whether the scenario met every goal.
func (r *Row) Passed() bool { return len(r.Failures) == 0 }

// Table writes rows as a table, then every row's failures.
func Table(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tresult\ttime to offline\tfalse offlines\tconverge\tlost acks\ttook\tnotes")
	for _, r := range rows {
		result := "PASS"
		if !r.Passed() {
			result = fmt.Sprintf("FAIL(%d)", len(r.Failures))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, result, dash(r.Offline), dash(r.FalseOfflines),
			dash(r.Converge), dash(r.LostAcks), secs(r.Took), strings.Join(r.Notes, " | "))
	}
	tw.Flush()
	for _, r := range rows {
		for _, f := range r.Failures {
			fmt.Fprintf(w, "FAIL %s: %s\n", r.Scenario, f)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
