package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// dump writes what the observers recorded and the timeline to
// observers.log in the scenario's directory, one line per event in time
// order, for reading next to the nodes' logs.
func (e *Env) dump() {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	e.TL.mu.Lock()
	for _, m := range e.TL.marks {
		lines = append(lines, line{m.at, fmt.Sprintf("timeline %s %s", m.host, m.kind)})
	}
	e.TL.mu.Unlock()
	for _, o := range e.Observers {
		trs, _, notices := o.records()
		for _, t := range trs {
			what := "online"
			if t.offline {
				what = "offline"
			}
			lines = append(lines, line{t.at, fmt.Sprintf("observer-%s %s %s rev=%d via=%s", o.Node.Name, t.user, what, t.rev, t.via)})
		}
		for _, n := range notices {
			lines = append(lines, line{n.at, fmt.Sprintf("observer-%s %s %s", o.Node.Name, n.what, n.code)})
		}
	}
	if e.Users != nil {
		for _, u := range e.Users.list {
			u.mu.Lock()
			for _, s := range u.spans {
				lines = append(lines, line{s.from, fmt.Sprintf("user %s connected to %s", u.ID, s.node)})
				if !s.to.IsZero() {
					lines = append(lines, line{s.to, fmt.Sprintf("user %s closed by %s (code %d)", u.ID, s.node, s.code)})
				}
			}
			u.mu.Unlock()
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %s\n", l.at.Format("15:04:05.000"), l.text)
	}
	_ = os.WriteFile(filepath.Join(e.Dir, "observers.log"), []byte(b.String()), 0o644)
}
