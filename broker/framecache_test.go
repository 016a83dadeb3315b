package broker

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

func TestFrameCache(t *testing.T) {
	var c frameCache
	b := presence.Batch{Group: "g", Rev: 7, Online: 1, Total: 2, Changes: []presence.Delta{
		{User: "u", Status: protocol.StatusBusy, Text: `"quoted"`, Since: time.UnixMilli(5), Rev: 7}}}
	f1 := c.frame(b)
	if !bytes.Equal(f1, appendBatch(nil, b)) {
		t.Fatal("cached frame differs from a fresh encoding")
	}
	d, err := protocol.DecodeServerFrame(f1)
	if err != nil || d.Op != protocol.OpDelta || d.Changes[0].Text != `"quoted"` || d.Rev != 7 {
		t.Fatalf("frame %s: %+v %v", f1, d, err)
	}
	if f2 := c.frame(b); &f2[0] != &f1[0] {
		t.Fatal("the same batch was encoded twice")
	}
	// The counts batch of the same revision is another frame.
	cb := presence.Batch{Group: "g", Rev: 7, Online: 1, Total: 2, CountsOnly: true}
	if d, _ := protocol.DecodeServerFrame(c.frame(cb)); d.Op != protocol.OpCounts {
		t.Fatalf("counts batch encoded as %s", d.Op)
	}
	// A later batch replaces the entry.
	b2 := b
	b2.Rev, b2.Changes = 8, []presence.Delta{{User: "u", Status: protocol.StatusOnline, Rev: 8}}
	f3 := c.frame(b2)
	if d, _ := protocol.DecodeServerFrame(f3); d.Rev != 8 || d.Changes[0].Status != protocol.StatusOnline {
		t.Fatalf("later batch: %+v", d)
	}
	// A connection's merged batch of the same revision and size is its
	// own frame, and leaves the shared one cached.
	m := b2
	m.Merged, m.Changes = true, []presence.Delta{{User: "v", Status: protocol.StatusAway, Rev: 8}}
	if d, _ := protocol.DecodeServerFrame(c.frame(m)); d.Changes[0].User != "v" {
		t.Fatalf("merged batch answered with the shared frame: %+v", d)
	}
	if f4 := c.frame(b2); &f4[0] != &f3[0] {
		t.Fatal("a merged batch replaced the shared frame")
	}
}

// BenchmarkMergedBatchFrame encodes the merged batch of a connection that
// fell behind while 1,000 members came online (join10k), into a pooled
// buffer given back once written, as the writer pool does.
func BenchmarkMergedBatchFrame(b *testing.B) {
	s := &Server{}
	batch := presence.Batch{Group: "pb-g0", Rev: 21000, Online: 1000, Total: 10000, Merged: true}
	for i := range 1000 {
		batch.Changes = append(batch.Changes, presence.Delta{User: "pb-u" + strconv.Itoa(i), Status: protocol.StatusOnline,
			Since: time.UnixMilli(1765152000000 + int64(i)), Rev: 20000 + uint64(i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		f := appendBatch(s.frameBufs.get(batchSize(batch)), batch)
		s.frameBufs.put(f)
	}
}
