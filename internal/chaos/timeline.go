package chaos

import (
	"sort"
	"sync"
	"time"
)

// markKind is what happened to a host.
type markKind int

const (
	markStart markKind = iota + 1 // the process was started
	markDown                      // the process was killed or told to stop
	markCut                       // the host's link went down
	markHeal                      // the host's link came back
)

func (k markKind) String() string {
	switch k {
	case markStart:
		return "start"
	case markDown:
		return "down"
	case markCut:
		return "cut"
	case markHeal:
		return "heal"
	}
	return "?"
}

// mark is one event of a host.
type mark struct {
	at   time.Time
	host string
	kind markKind
}

// Timeline records when each host was started, stopped, cut off and healed,
// so that measurements can ask what a host was at a given time.
type Timeline struct {
	mu sync.Mutex
	// mu guards the following field.
	marks []mark // in time order
}

// Mark records that kind happened to host now, and returns the time.
func (tl *Timeline) Mark(host string, kind markKind) time.Time {
	now := time.Now()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.marks = append(tl.marks, mark{at: now, host: host, kind: kind})
	sort.SliceStable(tl.marks, func(i, j int) bool { return tl.marks[i].at.Before(tl.marks[j].at) })
	return now
}

// Up reports whether host's process was running at t: started, and not
// killed or stopped since. A process told to stop counts as down at once.
func (tl *Timeline) Up(host string, t time.Time) bool {
	up, _ := tl.state(host, t)
	return up
}

// Majority reports whether host was up and not cut off at t.
func (tl *Timeline) Majority(host string, t time.Time) bool {
	up, cut := tl.state(host, t)
	return up && !cut
}

// starts counts the times host was started.
func (tl *Timeline) starts(host string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, m := range tl.marks {
		if m.host == host && m.kind == markStart {
			n++
		}
	}
	return n
}

func (tl *Timeline) state(host string, t time.Time) (up, cut bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, m := range tl.marks {
		if m.at.After(t) {
			break
		}
		if m.host != host {
			continue
		}
		switch m.kind {
		case markStart:
			up = true
		case markDown:
			up = false
		case markCut:
			cut = true
		case markHeal:
			cut = false
		}
	}
	return up, cut
}
