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

// marker returns the sequence number of the change whose text is t, if t
// is a marker.
func marker(t []byte) (int, bool) {
	num, ok := bytes.CutPrefix(t, []byte(markerPrefix))
	if !ok || len(num) == 0 || len(num) > 12 {
		return 0, false
	}
	n, end := digitsAt(num, 0)
	return int(n), end == len(num)
}
