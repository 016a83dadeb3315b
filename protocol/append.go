package protocol

import "strconv"

// The Append functions encode server frames into dst and return the
// extended buffer, as strconv.AppendInt does. They use no reflection and
// allocate only when dst lacks capacity, so a server can encode a delta once
// into a pooled buffer and send the bytes to every subscriber. An id of 0 is
// left out of the frame: pushes carry none.
//
// They trust their input: ids and statuses are written as given, strings
// are escaped. What DecodeServerFrame reads back equals what was appended.

// AppendHello appends a hello frame.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, `{"op":"hello","v":`...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = appendStringField(dst, "session", h.Session)
	dst = appendStringField(dst, "user", h.User)
	dst = appendStringField(dst, "node", h.Node)
	dst = appendIntField(dst, "expires", h.Expires)
	return append(dst, '}')
}

// AppendSnapshotStart appends a snapshot frame up to its members array. Add
// each member with AppendMember and finish with AppendSnapshotEnd; this
// lets a server stream a big group from its index without collecting it.
func AppendSnapshotStart(dst []byte, h SnapshotHeader) []byte {
	dst = append(dst, `{"op":"snapshot"`...)
	dst = appendID(dst, h.ID)
	dst = appendStringField(dst, "group", h.Group)
	dst = appendUintField(dst, "rev", h.Rev)
	dst = appendStringField(dst, "epoch", h.Epoch)
	if h.Fresh {
		dst = append(dst, `,"fresh":true`...)
	} else {
		dst = append(dst, `,"fresh":false`...)
	}
	dst = appendIntField(dst, "online", int64(h.Online))
	dst = appendIntField(dst, "total", int64(h.Total))
	return append(dst, `,"members":[`...)
}

// AppendMember appends one member object to an array, preceded by a comma
// unless first. It writes user, status, text and since always, and
// last_seen, rev and removed only when set.
func AppendMember(dst []byte, m Member, first bool) []byte {
	if first {
		dst = append(dst, `{"user":`...)
	} else {
		dst = append(dst, `,{"user":`...)
	}
	dst = appendString(dst, m.User)
	// The common statuses and the empty text are constants: no escaping.
	switch m.Status {
	case StatusOnline:
		dst = append(dst, `,"status":"online","text":`...)
	case StatusAway:
		dst = append(dst, `,"status":"away","text":`...)
	case StatusBusy:
		dst = append(dst, `,"status":"busy","text":`...)
	case StatusOffline:
		dst = append(dst, `,"status":"offline","text":`...)
	default:
		dst = append(dst, `,"status":`...)
		dst = appendString(dst, string(m.Status))
		dst = append(dst, `,"text":`...)
	}
	if m.Text == "" {
		dst = append(dst, `"","since":`...)
	} else {
		dst = appendString(dst, m.Text)
		dst = append(dst, `,"since":`...)
	}
	dst = strconv.AppendInt(dst, m.Since, 10)
	if m.LastSeen != 0 {
		dst = appendIntField(dst, "last_seen", m.LastSeen)
	}
	if m.Rev != 0 {
		dst = appendUintField(dst, "rev", m.Rev)
	}
	if m.Removed {
		dst = append(dst, `,"removed":true`...)
	}
	return append(dst, '}')
}

// AppendSnapshotEnd closes a frame begun with AppendSnapshotStart.
func AppendSnapshotEnd(dst []byte) []byte { return append(dst, ']', '}') }

// AppendSnapshot appends a whole snapshot frame.
func AppendSnapshot(dst []byte, h SnapshotHeader, members []Member) []byte {
	dst = AppendSnapshotStart(dst, h)
	dst = appendMembers(dst, members)
	return AppendSnapshotEnd(dst)
}

// AppendDelta appends a delta frame.
func AppendDelta(dst []byte, d Delta) []byte {
	dst = AppendDeltaStart(dst, d)
	dst = appendMembers(dst, d.Changes)
	return AppendDeltaEnd(dst)
}

// AppendDeltaStart appends a delta frame up to its changes array; it does
// not read d.Changes. Add each change with AppendMember and finish with
// AppendDeltaEnd: a server can then encode changes it holds in another
// form without collecting them as Members first.
func AppendDeltaStart(dst []byte, d Delta) []byte {
	dst = append(dst, `{"op":"delta"`...)
	dst = appendStringField(dst, "group", d.Group)
	dst = appendUintField(dst, "rev", d.Rev)
	dst = appendIntField(dst, "online", int64(d.Online))
	dst = appendIntField(dst, "total", int64(d.Total))
	return append(dst, `,"changes":[`...)
}

// AppendDeltaEnd closes a delta frame begun with AppendDeltaStart.
func AppendDeltaEnd(dst []byte) []byte { return append(dst, ']', '}') }

// AppendResumed appends a resumed frame.
func AppendResumed(dst []byte, r Resumed) []byte {
	dst = append(dst, `{"op":"resumed"`...)
	dst = appendID(dst, r.ID)
	dst = appendStringField(dst, "group", r.Group)
	dst = appendUintField(dst, "rev", r.Rev)
	dst = appendStringField(dst, "epoch", r.Epoch)
	dst = appendIntField(dst, "online", int64(r.Online))
	dst = appendIntField(dst, "total", int64(r.Total))
	dst = append(dst, `,"changes":[`...)
	dst = appendMembers(dst, r.Changes)
	return append(dst, ']', '}')
}

// AppendCounts appends a counts frame: the reply to watch_counts or to a
// counts_only subscribe when id is set, a push when it is 0.
func AppendCounts(dst []byte, id uint64, groups []GroupCount) []byte {
	dst = append(dst, `{"op":"counts"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"groups":[`...)
	for i, g := range groups {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"group":`...)
		dst = appendString(dst, g.Group)
		dst = appendIntField(dst, "online", int64(g.Online))
		dst = appendIntField(dst, "total", int64(g.Total))
		dst = appendUintField(dst, "rev", g.Rev)
		dst = append(dst, '}')
	}
	return append(dst, ']', '}')
}

// AppendStatuses appends a statuses frame, the reply to query.
func AppendStatuses(dst []byte, id uint64, users []Member) []byte {
	dst = append(dst, `{"op":"statuses"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"users":[`...)
	dst = appendMembers(dst, users)
	return append(dst, ']', '}')
}

// AppendOK appends an ok frame.
func AppendOK(dst []byte, id uint64) []byte {
	dst = append(dst, `{"op":"ok"`...)
	dst = appendID(dst, id)
	return append(dst, '}')
}

// AppendPong appends a pong frame.
func AppendPong(dst []byte, id uint64) []byte {
	dst = append(dst, `{"op":"pong"`...)
	dst = appendID(dst, id)
	return append(dst, '}')
}

// AppendError appends an error frame answering the request id.
func AppendError(dst []byte, id uint64, code ErrorCode, message string) []byte {
	dst = append(dst, `{"op":"error"`...)
	dst = appendID(dst, id)
	dst = appendStringField(dst, "code", string(code))
	dst = appendStringField(dst, "message", message)
	return append(dst, '}')
}

// AppendGroupError appends an error frame without id that ends the
// subscription to group, for instance with CodeForbidden when the caller
// left the group. The client forgets the group.
func AppendGroupError(dst []byte, group string, code ErrorCode, message string) []byte {
	dst = append(dst, `{"op":"error"`...)
	dst = appendStringField(dst, "group", group)
	dst = appendStringField(dst, "code", string(code))
	dst = appendStringField(dst, "message", message)
	return append(dst, '}')
}

func appendMembers(dst []byte, ms []Member) []byte {
	for i := range ms {
		dst = AppendMember(dst, ms[i], i == 0)
	}
	return dst
}

func appendID(dst []byte, id uint64) []byte {
	if id == 0 {
		return dst
	}
	return appendUintField(dst, "id", id)
}

// appendStringField appends ,"name":"value"; name must need no escaping.
func appendStringField(dst []byte, name, value string) []byte {
	dst = appendName(dst, name)
	return appendString(dst, value)
}

func appendIntField(dst []byte, name string, v int64) []byte {
	dst = appendName(dst, name)
	return strconv.AppendInt(dst, v, 10)
}

func appendUintField(dst []byte, name string, v uint64) []byte {
	dst = appendName(dst, name)
	return strconv.AppendUint(dst, v, 10)
}

func appendName(dst []byte, name string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}
