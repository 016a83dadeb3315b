package presence

import (
	"cmp"
	"slices"
	"strings"

	"github.com/presenced/presenced/protocol"
)

// history is a group's bounded window of recent deltas, kept so that a
// subscriber that reconnects with its last revision gets exactly what it
// missed. Every delta with a revision above floor is in the window.
type history struct {
	buf   []Delta // ring; grows up to max before it wraps
	start int
	n     int
	max   int
	floor uint64
}

func (h *history) push(d Delta) {
	if h.max <= 0 {
		h.floor = d.Rev
		return
	}
	if h.n < h.max {
		if len(h.buf) < h.max {
			h.buf = append(h.buf, d)
		} else {
			h.buf[(h.start+h.n)%h.max] = d
		}
		h.n++
		return
	}
	// Full: the oldest delta leaves; nothing at or below its revision is
	// complete any more.
	h.floor = h.buf[h.start].Rev
	h.buf[h.start] = d
	h.start = (h.start + 1) % h.max
}

// after returns a copy of the deltas with revisions above rev, oldest
// first, and whether the window is complete for rev.
func (h *history) after(rev uint64) ([]Delta, bool) {
	if rev < h.floor {
		return nil, false
	}
	var out []Delta
	for i := 0; i < h.n; i++ {
		d := h.buf[(h.start+i)%len(h.buf)]
		if d.Rev > rev {
			out = append(out, d)
		}
	}
	return out, true
}

// reset empties the window: only deltas after rev will be complete.
func (h *history) reset(rev uint64) {
	h.buf, h.start, h.n, h.floor = nil, 0, 0, rev
}

// changesSinceLocked derives the changes of g after revision rev from the
// current state, for a resume that the group's history cannot serve (this
// node started later, or the client is further behind than the history
// goes): the latest state of every member whose status changed or who
// joined after rev, and every member removed after rev, in revision order.
// It is exact as long as the stream still holds the delete markers of
// sessions after rev (the index's purged floor is below it). Intermediate
// states are merged, as coalescing does.
func (x *index) changesSinceLocked(g *group, rev uint64) []Delta {
	var out []Delta
	for uid, joined := range g.members {
		u := x.users[uid]
		if u == nil || u.rev <= rev && joined <= rev {
			continue
		}
		if u.rev <= rev && !u.status.Online() {
			continue // joined while offline: no presence to tell
		}
		out = append(out, Delta{User: uid, Status: u.status, Text: u.text, Since: u.since, Rev: max(u.rev, joined)})
	}
	for uid, r := range x.gone[g.id] {
		if r > rev {
			out = append(out, Delta{User: uid, Status: protocol.StatusOffline, Rev: r, Removed: true})
		}
	}
	slices.SortFunc(out, func(a, b Delta) int {
		if c := cmp.Compare(a.Rev, b.Rev); c != 0 {
			return c
		}
		return strings.Compare(a.User, b.User)
	})
	return out
}
