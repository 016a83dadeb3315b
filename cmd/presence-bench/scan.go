package main

import "github.com/presenced/presenced/protocol"

// entry is one member object of a frame's members or changes array, as
// the frame holds it: strings are the bytes between their quotes, escapes
// left as they are.
type entry struct {
	user, status, text []byte
	rev                uint64
	removed            bool
}

// present reports whether the entry makes its user present: a status
// other than offline, and not removed from the group.
func (e *entry) present() bool {
	return string(e.status) != string(protocol.StatusOffline) && !e.removed
}

// eachEntry walks the top-level object of frame b in one pass and calls fn
// for every object of its changes array, or of its members array too when
// members is set (a frame has one or the other). It reads any JSON the server may send, whatever the order
// of the fields and the spacing; it stops quietly at what it cannot read.
// Subscribers read every frame with it: on a machine the tool shares with
// the server, a frame read in several passes (one search per key) cost
// them about as much CPU as the server spent sending it.
func eachEntry(b []byte, members bool, fn func(e entry)) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return
		}
		end := skipString(b, i)
		if end < 0 {
			return
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = skipSpace(b, i+1)
		if (string(key) == "changes" || members && string(key) == "members") && i < len(b) && b[i] == '[' {
			scanArray(b, i, fn)
			return
		}
		if i = skipValue(b, i); i < 0 {
			return
		}
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i++
	}
}

// scanArray calls fn for every object of the array that starts at b[i].
func scanArray(b []byte, i int, fn func(e entry)) {
	var e entry
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '{' {
			return
		}
		end := scanEncoded(b, i, &e)
		if end < 0 {
			end = scanObject(b, i, &e)
		}
		if i = end; i < 0 {
			return
		}
		fn(e)
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i++
	}
}

// scanEncoded reads the member object that starts at b[i] into e, if it
// is laid out as protocol.AppendMember writes it (user, status, text and
// since, then last_seen, rev and removed when set, no spaces), and returns
// the index past it; otherwise -1, and scanObject reads it.
func scanEncoded(b []byte, i int, e *entry) int {
	*e = entry{}
	var ok bool
	if i, ok = expect(b, i, `{"user":`); !ok {
		return -1
	}
	if e.user, i = stringAt(b, i); i < 0 {
		return -1
	}
	if i, ok = expect(b, i, `,"status":`); !ok {
		return -1
	}
	if e.status, i = stringAt(b, i); i < 0 {
		return -1
	}
	if i, ok = expect(b, i, `,"text":`); !ok {
		return -1
	}
	if e.text, i = stringAt(b, i); i < 0 {
		return -1
	}
	if i, ok = expect(b, i, `,"since":`); !ok {
		return -1
	}
	if _, i = digitsAt(b, i); i < 0 {
		return -1
	}
	if j, ok := expect(b, i, `,"last_seen":`); ok {
		if _, i = digitsAt(b, j); i < 0 {
			return -1
		}
	}
	if j, ok := expect(b, i, `,"rev":`); ok {
		if e.rev, i = digitsAt(b, j); i < 0 {
			return -1
		}
	}
	if j, ok := expect(b, i, `,"removed":true`); ok {
		e.removed, i = true, j
	}
	if i, ok = expect(b, i, `}`); !ok {
		return -1
	}
	return i
}

// expect reports whether s is at b[i], and the index past it.
func expect(b []byte, i int, s string) (int, bool) {
	if len(b)-i < len(s) || string(b[i:i+len(s)]) != s {
		return i, false
	}
	return i + len(s), true
}

// stringAt returns the contents of the string at b[i] and the index past
// it, or -1.
func stringAt(b []byte, i int) ([]byte, int) {
	if i >= len(b) || b[i] != '"' {
		return nil, -1
	}
	end := skipString(b, i)
	if end < 0 {
		return nil, -1
	}
	return b[i+1 : end-1], end
}

// digitsAt reads the unsigned decimal number at b[i] and returns it and
// the index past it, or -1.
func digitsAt(b []byte, i int) (uint64, int) {
	var n uint64
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		n = n*10 + uint64(b[j]-'0')
		j++
	}
	if j == i {
		return 0, -1
	}
	return n, j
}

// scanObject reads the member object that starts at b[i] into e and
// returns the index past it, or -1.
func scanObject(b []byte, i int, e *entry) int {
	*e = entry{}
	i++
	for {
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		end := skipString(b, i)
		if end < 0 {
			return -1
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = skipSpace(b, i+1)
		v := i
		if i = skipValue(b, i); i < 0 {
			return -1
		}
		val := b[v:i]
		switch string(key) {
		case "user":
			e.user = unquote(val)
		case "status":
			e.status = unquote(val)
		case "text":
			e.text = unquote(val)
		case "rev":
			e.rev, _ = digitsAt(val, 0)
		case "removed":
			e.removed = string(val) == "true"
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// unquote returns the bytes between a string value's quotes, or nil when
// the value is no string.
func unquote(v []byte) []byte {
	if len(v) < 2 || v[0] != '"' {
		return nil
	}
	return v[1 : len(v)-1]
}

// ends marks the bytes that end a number, true, false or null.
var ends = [256]bool{',': true, '}': true, ']': true, ' ': true, '\t': true, '\n': true, '\r': true}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index past the string whose opening quote is
// b[i], or -1 when it does not end. The strings of a frame are short: a
// loop over their bytes beats a search's call.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++ // the escaped byte
		}
	}
	return -1
}

// skipValue returns the index past the value that starts at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	// A number, true, false or null.
	j := i
	for j < len(b) && !ends[b[j]] {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
