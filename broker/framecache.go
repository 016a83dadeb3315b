package broker

import (
	"sync"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// frameCache encodes each batch once for all the connections it goes to:
// a group's batch is shared by its subscribers and its frame carries no
// reply id, so every subscriber gets the same bytes. It keeps the latest
// frame per group; (group, rev, kind, size) tells batches apart.
type frameCache struct {
	mu sync.Mutex
	// mu guards the following field.
	m map[string]cachedFrame
}

type cachedFrame struct {
	rev    uint64
	counts bool
	n      int
	frame  []byte // read-only once cached
}

// frameCacheMax bounds the groups kept; past it the cache starts over.
const frameCacheMax = 4096

// frame returns the encoded batch. The result is shared: never modify it.
func (c *frameCache) frame(b presence.Batch) []byte {
	if b.Merged {
		// One connection's own batch: it may have the revision and size
		// of the group's shared batch, and no one else will ask for it.
		// (Connections encode theirs into pooled buffers: batchFrame.)
		return appendBatch(make([]byte, 0, batchSize(b)), b)
	}
	c.mu.Lock()
	e, ok := c.m[b.Group]
	c.mu.Unlock()
	if ok && e.rev == b.Rev && e.counts == b.CountsOnly && e.n == len(b.Changes) {
		return e.frame
	}
	f := appendBatch(make([]byte, 0, batchSize(b)), b)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= frameCacheMax {
		c.m = map[string]cachedFrame{}
	}
	c.m[b.Group] = cachedFrame{rev: b.Rev, counts: b.CountsOnly, n: len(b.Changes), frame: f}
	c.mu.Unlock()
	return f
}

// batchSize is about the size of b's frame: enough for most.
func batchSize(b presence.Batch) int { return 96 + len(b.Group) + 80*len(b.Changes) }

// appendBatch appends b's frame to dst. The changes are encoded as they
// are, without a slice of protocol.Member between: a merged batch (a
// connection that fell behind) can hold thousands.
func appendBatch(dst []byte, b presence.Batch) []byte {
	if b.CountsOnly {
		return protocol.AppendCounts(dst, 0, []protocol.GroupCount{{Group: b.Group, Online: b.Online, Total: b.Total, Rev: b.Rev}})
	}
	dst = protocol.AppendDeltaStart(dst, protocol.Delta{Group: b.Group, Rev: b.Rev, Online: b.Online, Total: b.Total})
	for i, d := range b.Changes {
		dst = protocol.AppendMember(dst, memberOf(d), i == 0)
	}
	return protocol.AppendDeltaEnd(dst)
}
