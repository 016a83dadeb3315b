package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// digest says, in a few lines for the table, what the logs show after the
// scenario's first fault: when each NATS server of an external NATS took
// the presence stream's lead, its first warnings and errors, and each
// node's last warning that is not a refused request. A failed scenario
// notes it, so that a run whose logs are gone (CI keeps only the table)
// still tells why.
func (e *Env) digest() []string {
	from := e.TL.firstFault()
	var out []string
	if e.NATS != nil {
		for _, s := range e.NATS.Servers {
			out = append(out, natsDigest(s.Name, s.LogPath, from)...)
		}
	}
	if e.Cluster != nil {
		out = append(out, e.TL.faults(from)...)
		for _, n := range e.Cluster.Nodes {
			out = append(out, nodeDigest(n.Name, n.LogPath, from)...)
			if w := lastWarning(n.LogPath); w != "" {
				out = append(out, n.Name+" last warning: "+w)
			}
		}
	}
	return out
}

// faults lists the hosts' downs, cuts, heals and restarts from from on.
func (tl *Timeline) faults(from time.Time) []string {
	if from.IsZero() {
		return nil
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var marks []string
	for _, m := range tl.marks {
		if !m.at.Before(from) {
			marks = append(marks, fmt.Sprintf("%s %s +%s", m.host, m.kind, secs(m.at.Sub(from))))
		}
	}
	if len(marks) == 0 {
		return nil
	}
	return []string{"timeline: " + strings.Join(marks, ", ")}
}

// nodeDigest reads a presenced log from from on: when the node's store
// went unavailable and came back, and how many of its embedded NATS
// server's RAFT leaders stepped down for a higher term, which is what a
// partition's heal costs: another election (nats-server has no pre-vote).
func nodeDigest(name, path string, from time.Time) []string {
	if from.IsZero() {
		return nil
	}
	var store []string
	var stepdowns int
	var firstStepdown time.Duration
	eachLine(path, func(line []byte) {
		var l struct {
			TS  float64 `json:"ts"`
			Msg string  `json:"msg"`
		}
		if json.Unmarshal(line, &l) != nil {
			return
		}
		at := time.Unix(0, int64(l.TS*float64(time.Second)))
		if at.Before(from) {
			return
		}
		switch {
		case l.Msg == "presence: unavailable":
			store = append(store, "unavailable +"+secs(at.Sub(from)))
		case l.Msg == "presence: available again":
			store = append(store, "available again +"+secs(at.Sub(from)))
		case strings.Contains(l.Msg, "Detected another leader with higher term"):
			if stepdowns == 0 {
				firstStepdown = at.Sub(from)
			}
			stepdowns++
		}
	})
	var out []string
	if len(store) > 0 {
		out = append(out, name+" store: "+strings.Join(store, ", "))
	}
	if stepdowns > 0 {
		out = append(out, fmt.Sprintf("%s NATS: %d RAFT leaders stepped down for a higher term, the first at +%s",
			name, stepdowns, secs(firstStepdown)))
	}
	return out
}

// firstFault is when the first host went down or was cut off; the zero
// time if none was.
func (tl *Timeline) firstFault() time.Time {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, m := range tl.marks {
		if m.kind == markDown || m.kind == markCut {
			return m.at
		}
	}
	return time.Time{}
}

// natsDigest reads a nats-server log: the presence stream's leader changes
// after from, and the first three distinct warnings and errors after it
// that are not about routes to a server that is down.
func natsDigest(name, path string, from time.Time) []string {
	if from.IsZero() {
		return nil
	}
	var led []string
	var warns []string
	seen := map[string]bool{}
	if !eachLine(path, func(line []byte) {
		at, level, msg, ok := natsLine(string(line))
		if !ok || at.Before(from) {
			return
		}
		switch {
		case strings.Contains(msg, "new stream leader for '$G > "+presenceStream+"'"):
			led = append(led, "+"+secs(at.Sub(from)))
		case (level == "WRN" || level == "ERR") && !strings.Contains(msg, "route"):
			if len(warns) < 3 && !seen[msg] {
				seen[msg] = true
				warns = append(warns, fmt.Sprintf("+%s %s %s", secs(at.Sub(from)), level, clip(msg, 160)))
			}
		}
	}) {
		return nil
	}
	var out []string
	if len(led) == 0 {
		out = append(out, name+" never took the presence stream's lead after the fault")
	} else {
		out = append(out, name+" took the presence stream's lead at "+strings.Join(led, ", "))
	}
	for _, w := range warns {
		out = append(out, name+" "+w)
	}
	return out
}

// natsLine splits "[pid] 2006/01/02 15:04:05.000000 [LVL] message".
func natsLine(line string) (at time.Time, level, msg string, ok bool) {
	_, rest, found := strings.Cut(line, "] ")
	if !found || len(rest) < 27 {
		return time.Time{}, "", "", false
	}
	at, err := time.ParseInLocation("2006/01/02 15:04:05.000000", rest[:26], time.Local)
	if err != nil {
		return time.Time{}, "", "", false
	}
	rest = rest[27:]
	if len(rest) < 6 || rest[0] != '[' || rest[4] != ']' {
		return time.Time{}, "", "", false
	}
	return at, rest[1:4], rest[6:], true
}

// lastWarning is the last warning or error in a presenced log that is not
// a refused request (those repeat why the node is unavailable).
func lastWarning(path string) string {
	var last string
	eachLine(path, func(line []byte) {
		var l struct {
			Level  string  `json:"level"`
			TS     float64 `json:"ts"`
			Msg    string  `json:"msg"`
			Error  string  `json:"error"`
			Logger string  `json:"logger"`
		}
		if json.Unmarshal(line, &l) != nil || (l.Level != "warn" && l.Level != "error") ||
			l.Msg == "request failed" || strings.HasPrefix(l.Msg, "request failed:") || l.Logger == "nats" {
			return
		}
		at := time.Unix(0, int64(l.TS*float64(time.Second)))
		last = at.Format("15:04:05.000") + " " + l.Msg
		if l.Error != "" {
			last += ": " + l.Error
		}
	})
	return clip(last, 240)
}

// eachLine calls fn with each line of the log at path (up to 1 MiB a
// line) and reports whether the log could be opened.
func eachLine(path string, fn func(line []byte)) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	return true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
