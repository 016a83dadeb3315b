package presence

import (
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

func TestAggregate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const (
		on   = protocol.StatusOnline
		away = protocol.StatusAway
		busy = protocol.StatusBusy
		off  = protocol.StatusOffline
	)
	c := func(st protocol.Status, text string, since int, rev uint64) contribution {
		return contribution{status: st, text: text, since: at(since), rev: rev}
	}
	m := func(st protocol.Status, text string, since int) *manualStatus {
		return &manualStatus{status: st, text: text, since: at(since)}
	}
	tests := []struct {
		name     string
		sessions []contribution
		manual   *manualStatus
		status   protocol.Status
		text     string
		since    time.Time
	}{
		{"no sessions", nil, nil, off, "", time.Time{}},
		{"no sessions keeps manual text", nil, m("", "lunch", 1), off, "lunch", time.Time{}},
		{"manual busy without session is offline", nil, m(busy, "", 1), off, "", time.Time{}},
		{"one online", []contribution{c(on, "", 5, 1)}, nil, on, "", at(5)},
		{"one away", []contribution{c(away, "", 5, 1)}, nil, away, "", at(5)},
		{"online beats away", []contribution{c(away, "", 1, 1), c(on, "", 7, 2)}, nil, on, "", at(7)},
		{"online beats busy source", []contribution{c(busy, "call", 1, 1), c(on, "", 7, 2)}, nil, on, "call", at(7)},
		{"busy beats away", []contribution{c(away, "", 1, 1), c(busy, "", 3, 2)}, nil, busy, "", at(3)},
		{"earliest since of winning status", []contribution{c(on, "", 9, 1), c(on, "", 4, 2), c(away, "", 1, 3)}, nil, on, "", at(4)},
		{"most recent text wins", []contribution{c(on, "old", 1, 1), c(on, "new", 2, 5), c(on, "", 3, 9)}, nil, on, "new", at(1)},
		{"text from any counting session", []contribution{c(away, "afk", 1, 4), c(on, "", 2, 1)}, nil, on, "afk", at(2)},
		{"manual busy wins over online", []contribution{c(on, "", 1, 1)}, m(busy, "", 5), busy, "", at(5)},
		{"manual away wins", []contribution{c(on, "", 1, 1)}, m(away, "brb", 5), away, "brb", at(5)},
		{"manual since never before presence", []contribution{c(on, "", 8, 1)}, m(busy, "", 5), busy, "", at(8)},
		{"manual text beats session text", []contribution{c(on, "s", 1, 1)}, m(busy, "m", 2), busy, "m", at(2)},
		{"manual busy keeps session text when no manual text", []contribution{c(on, "s", 1, 1)}, m(busy, "", 2), busy, "s", at(2)},
		{"invisible", []contribution{c(on, "s", 1, 1)}, m(off, "", 2), off, "", time.Time{}},
		{"invisible keeps manual text only", []contribution{c(on, "s", 1, 1)}, m(off, "m", 2), off, "m", time.Time{}},
		{"text-only manual", []contribution{c(away, "s", 1, 1)}, m("", "m", 2), away, "m", at(1)},
		{"online manual is text-only", []contribution{c(away, "", 1, 1)}, m(on, "", 2), away, "", at(1)},
		{"invalid session status adds nothing", []contribution{c(off, "x", 1, 1)}, nil, off, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, text, since := aggregate(tt.sessions, tt.manual)
			if st != tt.status || text != tt.text || !since.Equal(tt.since) {
				t.Fatalf("aggregate = %s %q %v, want %s %q %v", st, text, since, tt.status, tt.text, tt.since)
			}
		})
	}
}
