package presence

import (
	"container/heap"
	"time"
)

// expiryItem is a key that carries an expiry time at one revision. Items
// are never removed early: a popped item whose key moved on to another
// revision is simply stale and ignored.
type expiryItem struct {
	at  time.Time
	key string
	rev uint64
	// backup marks an item that already waited for the leader, or a retry.
	backup bool
}

// expiryHeap is a min-heap of expiryItems by time.
type expiryHeap []expiryItem

var _ heap.Interface = (*expiryHeap)(nil)

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(v any)        { *h = append(*h, v.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (h *expiryHeap) add(it expiryItem) { heap.Push(h, it) }

// next returns the earliest item without removing it.
func (h expiryHeap) next() (expiryItem, bool) {
	if len(h) == 0 {
		return expiryItem{}, false
	}
	return h[0], true
}

func (h *expiryHeap) pop() expiryItem { return heap.Pop(h).(expiryItem) }
