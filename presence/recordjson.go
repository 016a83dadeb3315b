package presence

import (
	"strconv"
	"time"

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
