package protocol

import (
	"strconv"
	"testing"
)

func benchMembers(n int) []Member {
	ms := make([]Member, n)
	statuses := []Status{StatusOnline, StatusAway, StatusBusy, StatusOffline}
	for i := range ms {
		ms[i] = Member{
			User:   "user-" + strconv.Itoa(i),
			Status: statuses[i%len(statuses)],
			Since:  1795000000000 + int64(i),
		}
		if i%10 == 0 {
			ms[i].Text = "In a meeting"
		}
	}
	return ms
}

// BenchmarkAppendSnapshot10k encodes a snapshot of a 10,000 member group
// into a reused buffer, as a server does when a client subscribes.
func BenchmarkAppendSnapshot10k(b *testing.B) {
	ms := benchMembers(10000)
	h := SnapshotHeader{ID: 1, Group: "big", Rev: 123456, Epoch: "e", Online: 7500, Total: 10000}
	buf := AppendSnapshot(nil, h, ms)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		buf = AppendSnapshotStart(buf, h)
		for i := range ms {
			buf = AppendMember(buf, ms[i], i == 0)
		}
		buf = AppendSnapshotEnd(buf)
	}
}

func BenchmarkAppendDelta(b *testing.B) {
	d := Delta{Group: "g1", Rev: 12, Online: 2, Total: 5, Changes: benchMembers(3)}
	buf := AppendDelta(nil, d)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDelta(buf[:0], d)
	}
}

func BenchmarkDecodeClientFrame(b *testing.B) {
	data := []byte(`{"op":"subscribe","id":1,"group":"g1","rev":123,"epoch":"e","counts_only":false}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeClientFrame(data); err != nil {
			b.Fatal(err)
		}
	}
}
