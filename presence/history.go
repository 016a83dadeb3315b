package presence

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
