package broker

import (
	"sync"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// snapCache keeps, per large group, the encoded member list of its latest
// snapshot: when many clients subscribe to a group at the same revision
// (a reconnect storm, a big room opening), the members are encoded once.
// A snapshot at another revision replaces the entry.
type snapCache struct {
	mu sync.Mutex
	// mu guards the following field.
	m map[string]cachedMembers
}

type cachedMembers struct {
	rev   uint64
	epoch string
	body  []byte // the members array's contents, without brackets
}

const (
	// snapCacheMin is the smallest snapshot worth caching: encoding a few
	// members costs less than the lookup.
	snapCacheMin = 100
	// snapCacheMax bounds the cached groups; past it the cache starts over.
	snapCacheMax = 1024
)

func (c *snapCache) members(group string, snap presence.Snapshot) []byte {
	if len(snap.Members) < snapCacheMin {
		return appendMembers(nil, snap.Members)
	}
	c.mu.Lock()
	e, ok := c.m[group]
	c.mu.Unlock()
	if ok && e.rev == snap.Rev && e.epoch == snap.Epoch {
		return e.body
	}
	body := appendMembers(make([]byte, 0, 64*len(snap.Members)), snap.Members)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= snapCacheMax {
		c.m = map[string]cachedMembers{}
	}
	c.m[group] = cachedMembers{rev: snap.Rev, epoch: snap.Epoch, body: body}
	c.mu.Unlock()
	return body
}

func appendMembers(dst []byte, ms []presence.MemberStatus) []byte {
	for i, m := range ms {
		dst = protocol.AppendMember(dst, protocol.Member{User: m.User, Status: m.Status, Text: m.Text, Since: m.Since.UnixMilli()}, i == 0)
	}
	return dst
}
