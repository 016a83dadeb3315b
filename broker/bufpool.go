package broker

import (
	"math/bits"
	"sync"
)

// bufPool recycles byte buffers by size class (powers of two from 1 KiB to
// 16 MiB): a buffer of a class holds any frame of up to that size.
// Buffers larger than the largest class are not kept.
type bufPool struct {
	classes [bufClasses]sync.Pool // of *[]byte
}

const (
	bufMinShift = 10 // the smallest class: 1 KiB
	bufClasses  = 15 // the largest: 16 MiB
)

// get returns an empty buffer with room for n bytes.
func (p *bufPool) get(n int) []byte {
	c := 0
	if n > 1<<bufMinShift {
		c = bits.Len(uint(n-1)) - bufMinShift // the smallest class that holds n
	}
	if c >= bufClasses {
		return make([]byte, 0, n)
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<(c+bufMinShift))
}

// put gives b back. Its contents must no longer be read.
func (p *bufPool) put(b []byte) {
	if cap(b) < 1<<bufMinShift {
		return
	}
	c := bits.Len(uint(cap(b))) - 1 - bufMinShift // the largest class b holds
	if c >= bufClasses {
		return
	}
	b = b[:0]
	p.classes[c].Put(&b)
}
