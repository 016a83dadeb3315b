package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/presenced/presenced/protocol"
)

// Subscribers read tens of thousands of frames a second on a machine they
// share with the server, so they do not decode frames with encoding/json:
// they read the op and the header fields, and scan the changes of a delta
// for the markers of the status changes this tool made. The server writes
// frames with the protocol package's append encoders, in a fixed field
// order; the scanner relies on that order only to be fast, and tests keep
// it in step with the encoders.

// markerPrefix starts the status text of every change the tool makes; the
// change's sequence number follows in decimal.
const markerPrefix = "pb:"

func markerText(seq int) string { return markerPrefix + strconv.Itoa(seq) }

var errFrame = errors.New("presence-bench: unexpected frame")

// frameOp returns the op of a server frame.
func frameOp(b []byte) protocol.Op {
	const pre = `{"op":"`
	if bytes.HasPrefix(b, []byte(pre)) {
		if end := bytes.IndexByte(b[len(pre):], '"'); end >= 0 {
			return protocol.Op(b[len(pre) : len(pre)+end])
		}
	}
	f, err := protocol.DecodeServerFrame(b)
	if err != nil && f.Op == "" {
		return ""
	}
	return f.Op
}

// frameHeader is what a subscriber needs of a snapshot, resumed or delta
// frame besides its members.
type frameHeader struct {
	Op     protocol.Op `json:"op"`
	ID     uint64      `json:"id"`
	Group  string      `json:"group"`
	Rev    uint64      `json:"rev"`
	Epoch  string      `json:"epoch"`
	Online int         `json:"online"`
	Total  int         `json:"total"`
}

// parseHeader decodes the fields before a frame's members or changes
// array, without reading the array.
func parseHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	cut := len(b)
	for _, key := range [][]byte{[]byte(`,"members":[`), []byte(`,"changes":[`)} {
		if i := bytes.Index(b, key); i >= 0 && i < cut {
			cut = i
		}
	}
	if cut == len(b) {
		return h, json.Unmarshal(b, &h)
	}
	head := make([]byte, 0, cut+1)
	head = append(append(head, b[:cut]...), '}')
	if err := json.Unmarshal(head, &h); err != nil {
		return h, errors.Join(errFrame, err)
	}
	return h, nil
}

// scanChanges calls fn for every member of b's changes array whose text is
// a marker, with the member's user and the marker's sequence number.
func scanChanges(b []byte, fn func(user []byte, seq int)) {
	i := bytes.Index(b, []byte(`"changes":[`))
	if i < 0 {
		return
	}
	rest := b[i:]
	userKey := []byte(`{"user":"`)
	textKey := []byte(`"text":"`)
	for {
		j := bytes.Index(rest, userKey)
		if j < 0 {
			return
		}
		rest = rest[j+len(userKey):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			return
		}
		user := rest[:end]
		rest = rest[end:]
		// The text follows the status within the same member; a member
		// whose text is empty or not a marker is skipped.
		t := bytes.Index(rest, textKey)
		if t < 0 {
			return
		}
		if next := bytes.Index(rest, userKey); next >= 0 && next < t {
			continue
		}
		rest = rest[t+len(textKey):]
		if !bytes.HasPrefix(rest, []byte(markerPrefix)) {
			continue
		}
		num := rest[len(markerPrefix):]
		n, k := 0, 0
		for k < len(num) && num[k] >= '0' && num[k] <= '9' && k < 12 {
			n = n*10 + int(num[k]-'0')
			k++
		}
		if k > 0 && k < len(num) && num[k] == '"' {
			fn(user, n)
		}
		rest = num[k:]
	}
}
