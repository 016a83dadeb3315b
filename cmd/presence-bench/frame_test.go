package main

import (
	"fmt"
	"testing"

	"github.com/presenced/presenced/protocol"
)

// The scanner must read what the server's encoders write: these frames
// come from the protocol package's append functions.
func TestMarkers(t *testing.T) {
	frame := protocol.AppendDelta(nil, protocol.Delta{Group: "g1", Rev: 99, Online: 2, Total: 3, Changes: []protocol.Member{
		{User: "pb-u1", Status: protocol.StatusOnline, Text: markerText(7), Since: 1, Rev: 90},
		{User: "pb-u2", Status: protocol.StatusBusy, Text: "", Since: 2, Rev: 91},
		{User: "pb-u3", Status: protocol.StatusOffline, Text: "pb:notanumber", Since: 3, LastSeen: 3, Rev: 92},
		{User: "pb-u4", Status: protocol.StatusAway, Text: "hello \"pb:5\"", Since: 4, Rev: 93},
		{User: "pb-u5", Status: protocol.StatusOnline, Text: markerText(123456), Since: 5, Rev: 99, Removed: true},
	}})
	var got []string
	scanChanges := func(b []byte, fn func(user []byte, seq int)) {
		eachEntry(b, false, func(e entry) {
			if seq, ok := marker(e.text); ok {
				fn(e.user, seq)
			}
		})
	}
	scanChanges(frame, func(user []byte, seq int) { got = append(got, fmt.Sprintf("%s=%d", user, seq)) })
	want := []string{"pb-u1=7", "pb-u5=123456"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("markers %v, want %v\nframe %s", got, want, frame)
	}
	if op := frameOp(frame); op != protocol.OpDelta {
		t.Fatalf("op %q", op)
	}
	if rev, ok := headerUint(frame, "rev"); !ok || rev != 99 {
		t.Fatalf("rev %d %v", rev, ok)
	}
	// A snapshot holds markers of earlier changes: they are not scanned.
	snap := protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: 1, Group: "g1"},
		[]protocol.Member{{User: "pb-u1", Status: protocol.StatusOnline, Text: markerText(1)}})
	scanChanges(snap, func([]byte, int) { t.Fatal("marker found in a snapshot") })
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  frameHeader
	}{
		{"snapshot", protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: 5, Group: "g", Rev: 10, Epoch: "e1", Online: 1, Total: 2},
			[]protocol.Member{{User: "a", Status: protocol.StatusOnline}, {User: "b", Status: protocol.StatusOffline}}),
			frameHeader{Op: protocol.OpSnapshot, ID: 5, Group: "g", Rev: 10, Epoch: "e1", Online: 1, Total: 2}},
		{"empty snapshot", protocol.AppendSnapshot(nil, protocol.SnapshotHeader{ID: 6, Group: "g", Rev: 3, Epoch: "e"}, nil),
			frameHeader{Op: protocol.OpSnapshot, ID: 6, Group: "g", Rev: 3, Epoch: "e"}},
		{"resumed", protocol.AppendResumed(nil, protocol.Resumed{ID: 7, Group: "g", Rev: 12, Epoch: "e", Online: 1, Total: 3,
			Changes: []protocol.Member{{User: "a", Status: protocol.StatusAway, Rev: 12}}}),
			frameHeader{Op: protocol.OpResumed, ID: 7, Group: "g", Rev: 12, Epoch: "e", Online: 1, Total: 3}},
		{"pong", protocol.AppendPong(nil, 8), frameHeader{Op: protocol.OpPong, ID: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHeader(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if op := frameOp(tt.frame); op != tt.want.Op {
				t.Fatalf("op %q", op)
			}
		})
	}
	if _, err := parseHeader([]byte(`{"op":"snapshot","id":`)); err == nil {
		t.Fatal("truncated frame accepted")
	}
}
