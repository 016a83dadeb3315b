package presence

import (
	"time"

	"github.com/presenced/presenced/protocol"
)

// contribution is what one counting session or backend source adds to its
// user's status.
type contribution struct {
	status protocol.Status
	text   string
	// since is when the session's status began.
	since time.Time
	// rev orders texts: the most recent session with a text wins.
	rev uint64
}

// manualStatus is a user's hand-set status as the aggregation sees it.
type manualStatus struct {
	// status is busy, away, offline (invisible) or empty (text only).
	status protocol.Status
	text   string
	since  time.Time
}

// aggregate is what every API shows for a user: status, text and the time
// the status began. It is a pure function of the counting sessions and the
// manual status, so every node derives the same answer from the same KV
// state.
//
//   - With no session, the user is offline; the text is the manual text.
//   - A manual busy, away or offline (invisible) wins while any session
//     exists.
//   - Otherwise online if any session is online, else busy if any is busy
//     (a backend source may say so), else away.
//   - The text is the manual text if set, else the text of the most recent
//     session that has one; an offline user shows only the manual text.
//   - since is the earliest since of the sessions with the winning status;
//     under a manual status, the later of the manual status's since and the
//     earliest session since.
func aggregate(cs []contribution, m *manualStatus) (status protocol.Status, text string, since time.Time) {
	if m != nil {
		text = m.text
	}
	if len(cs) == 0 {
		return protocol.StatusOffline, text, time.Time{}
	}
	best := 0
	var first, statusSince time.Time
	var textRev uint64
	sessionText := ""
	for _, c := range cs {
		r := statusRank(c.status)
		if r == 0 {
			continue
		}
		if first.IsZero() || c.since.Before(first) {
			first = c.since
		}
		switch {
		case r > best:
			best, statusSince = r, c.since
		case r == best && c.since.Before(statusSince):
			statusSince = c.since
		}
		if c.text != "" && c.rev >= textRev {
			sessionText, textRev = c.text, c.rev
		}
	}
	if best == 0 {
		return protocol.StatusOffline, text, time.Time{}
	}
	if m != nil && manualApplies(m.status) {
		if m.status == protocol.StatusOffline {
			return protocol.StatusOffline, text, time.Time{}
		}
		since = first
		if m.since.After(since) {
			since = m.since
		}
		if text == "" {
			text = sessionText
		}
		return m.status, text, since
	}
	if text == "" {
		text = sessionText
	}
	return rankStatus[best], text, statusSince
}

// manualApplies reports whether a manual status overrides the sessions.
func manualApplies(s protocol.Status) bool {
	return s == protocol.StatusBusy || s == protocol.StatusAway || s == protocol.StatusOffline
}

// statusRank orders session statuses; 0 means the session adds nothing.
func statusRank(s protocol.Status) int {
	switch s {
	case protocol.StatusOnline:
		return 3
	case protocol.StatusBusy:
		return 2
	case protocol.StatusAway:
		return 1
	}
	return 0
}

var rankStatus = [...]protocol.Status{protocol.StatusOffline, protocol.StatusAway, protocol.StatusBusy, protocol.StatusOnline}
