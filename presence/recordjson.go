package presence

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/presenced/presenced/protocol"
)

// Session records and changes are written for every session, every backend
// event and every change on the feed, so they are encoded by hand: the
// output decodes to what encoding/json makes of the same value (it writes
// the same fields, in the same order, with the same omissions, and leaves
// <, > and & unescaped, as the protocol's frames do).

func (r *sessionRecord) appendJSON(b []byte) []byte {
	b = append(b, `{"user":`...)
	b = protocol.AppendString(b, r.User)
	b = append(b, `,"session":`...)
	b = protocol.AppendString(b, r.Session)
	b = appendOptString(b, `,"node":`, r.Node)
	b = appendOptString(b, `,"inst":`, r.Inst)
	b = append(b, `,"status":`...)
	b = protocol.AppendString(b, string(r.Status))
	b = appendOptString(b, `,"text":`, r.Text)
	b = appendOptString(b, `,"device":`, r.Device)
	b = appendOptString(b, `,"client":`, r.Client)
	b = appendOptTime(b, `,"since":`, r.Since)
	b = appendOptTime(b, `,"expires":`, r.Expires)
	if r.Auto {
		b = append(b, `,"auto":true`...)
	}
	return append(b, '}')
}

func (c *Change) appendJSON(b []byte) []byte {
	b = append(b, `{"user":`...)
	b = protocol.AppendString(b, c.User)
	b = append(b, `,"status":`...)
	b = protocol.AppendString(b, string(c.Status))
	b = appendOptString(b, `,"text":`, c.Text)
	b = appendOptTime(b, `,"since":`, c.Since)
	b = append(b, `,"rev":`...)
	b = strconv.AppendUint(b, c.Rev, 10)
	return append(b, '}')
}

func appendOptString(b []byte, field, v string) []byte {
	if v == "" {
		return b
	}
	return protocol.AppendString(append(b, field...), v)
}

// appendOptTime writes a time as time.Time's MarshalJSON does.
func appendOptTime(b []byte, field string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, field...)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// decodeSessionRecord decodes a session record into r exactly as
// encoding/json.Unmarshal does. The records appendJSON writes (their
// fields named as it names them, in its order, no spaces, strings without
// escapes) are read directly: every node decodes every session write it
// applies, and encoding/json's reflection costs several times the rest of
// that apply. Anything else goes to encoding/json.
func decodeSessionRecord(b []byte, r *sessionRecord) error {
	if readSessionRecord(b, r) {
		return nil
	}
	*r = sessionRecord{}
	return json.Unmarshal(b, r)
}

// sessionFields are a session record's fields in the order appendJSON
// writes them.
var sessionFields = [...]string{"user", "session", "node", "inst", "status", "text", "device", "client", "since", "expires", "auto"}

// readSessionRecord reads b into r if b is a record in appendJSON's form:
// each field at most once and in its order, so that no field is seen
// twice (encoding/json keeps the last) and no name needs encoding/json's
// case-insensitive match. It reports false, with r in any state, for
// anything else, valid JSON or not.
func readSessionRecord(b []byte, r *sessionRecord) bool {
	*r = sessionRecord{}
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	// strs are the string fields, at their index in sessionFields.
	strs := [...]*string{&r.User, &r.Session, &r.Node, &r.Inst, nil, &r.Text, &r.Device, &r.Client}
	i, next := 1, 0
	if b[i] == '}' {
		return i+1 == len(b)
	}
	for {
		name, j, ok := plainString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return false
		}
		f := next
		for f < len(sessionFields) && sessionFields[f] != string(name) {
			f++
		}
		if f == len(sessionFields) {
			return false
		}
		next = f + 1
		i = j + 1
		if sessionFields[f] == "auto" {
			switch {
			case bytes.HasPrefix(b[i:], []byte("true")):
				r.Auto, i = true, i+4
			case bytes.HasPrefix(b[i:], []byte("false")):
				i += 5
			default:
				return false
			}
		} else {
			v, j, ok := plainString(b, i)
			if !ok {
				return false
			}
			switch sessionFields[f] {
			case "status":
				r.Status = internStatus(v)
			case "since", "expires":
				t := &r.Since
				if sessionFields[f] == "expires" {
					t = &r.Expires
				}
				if t.UnmarshalJSON(b[i:j]) != nil {
					return false
				}
			default:
				*strs[f] = string(v)
			}
			i = j
		}
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i+1 == len(b)
		default:
			return false
		}
	}
}

// plainString reads the JSON string at b[i]: its content and the index
// after its closing quote. It reports false for a string with an escape,
// a control character or invalid UTF-8, which encoding/json would rewrite
// or refuse.
func plainString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[i+1 : j]
			return s, j + 1, ascii || utf8.Valid(s)
		case c == '\\' || c < ' ':
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// internStatus returns the canonical Status equal to v without allocating,
// or a copy of v.
func internStatus(v []byte) protocol.Status {
	for _, s := range [...]protocol.Status{protocol.StatusOnline, protocol.StatusAway, protocol.StatusBusy, protocol.StatusOffline} {
		if string(v) == string(s) {
			return s
		}
	}
	return protocol.Status(v)
}
