package broker

import "testing"

func TestBufPool(t *testing.T) {
	var p bufPool
	for _, n := range []int{0, 1, 1023, 1024, 1025, 4096, 70000, 16 << 20, 16<<20 + 1} {
		b := p.get(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("get(%d): len %d cap %d", n, len(b), cap(b))
		}
		p.put(append(b, 'x'))
		if b2 := p.get(n); len(b2) != 0 || cap(b2) < n {
			t.Fatalf("get(%d) after a put: len %d cap %d", n, len(b2), cap(b2))
		}
	}
	// A buffer that grew past its class goes to the class it now fills.
	b := append(p.get(1000), make([]byte, 3000)...)
	p.put(b)
	if b2 := p.get(2048); cap(b2) < 2048 {
		t.Fatalf("get(2048): cap %d", cap(b2))
	}
}

// BenchmarkSubscribeFrame100 encodes and drops a subscription's snapshot of
// 100 members at a new revision each time, as the subscribe op does.
func BenchmarkSubscribeFrame100(b *testing.B) {
	s := &Server{}
	snap := benchSnapshot(100)
	b.ReportAllocs()
	for b.Loop() {
		snap.Rev++
		f := s.appendInitial(s.frameBufs.get(initialSize(snap.Group, snap)), 1, snap.Group, snap)
		s.frameBufs.put(f)
	}
}
