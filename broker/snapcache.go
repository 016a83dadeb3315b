package broker

import (
	"sync"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// snapCache keeps, per large group, the encoded member list of a snapshot
// that more than one client asked for: when many clients subscribe to a
// group at the same revision (a reconnect storm, a big room opening), the
// members are encoded once. A group whose revision moves between two
// subscribes (members coming online one by one) gains nothing from a
// cache, so a revision is cached only when asked for the second time; the
// first asker's members are encoded straight into its frame.
type snapCache struct {
	mu sync.Mutex
	// mu guards the following field.
	m map[string]cachedMembers
}

type cachedMembers struct {
	rev   uint64
	epoch string
	body  []byte // the members array's contents, without brackets; nil: asked for once
}

const (
	// snapCacheMin is the smallest snapshot worth caching: encoding a few
	// members costs less than the lookup.
	snapCacheMin = 100
	// snapCacheMax bounds the cached groups; past it the cache starts over.
	snapCacheMax = 1024
)

// appendMembers appends the contents of snap's members array to dst.
func (c *snapCache) appendMembers(dst []byte, group string, snap presence.Snapshot) []byte {
	if len(snap.Members) < snapCacheMin {
		return appendMembers(dst, snap.Members)
	}
	c.mu.Lock()
	e, ok := c.m[group]
	c.mu.Unlock()
	same := ok && e.rev == snap.Rev && e.epoch == snap.Epoch
	if same && e.body != nil {
		return append(dst, e.body...)
	}
	e = cachedMembers{rev: snap.Rev, epoch: snap.Epoch}
	if same { // the second ask at this revision: keep the encoding
		e.body = appendMembers(make([]byte, 0, membersSize(snap.Members)), snap.Members)
		dst = append(dst, e.body...)
	} else {
		dst = appendMembers(dst, snap.Members)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= snapCacheMax {
		c.m = map[string]cachedMembers{}
	}
	c.m[group] = e
	c.mu.Unlock()
	return dst
}

func appendMembers(dst []byte, ms []presence.MemberStatus) []byte {
	for i, m := range ms {
		dst = protocol.AppendMember(dst, protocol.Member{User: m.User, Status: m.Status, Text: m.Text, Since: m.Since.UnixMilli()}, i == 0)
	}
	return dst
}

// memberSize bounds the encoding of a member without its user id and
// text: {"user":"","status":"offline","text":"","since":-9223372036854775808}
// and a comma, with room for a few escapes.
const memberSize = 80

// membersSize is about the size of ms encoded: enough unless ids or texts
// need escaping.
func membersSize(ms []presence.MemberStatus) int {
	n := 0
	for i := range ms {
		n += memberSize + len(ms[i].User) + len(ms[i].Text)
	}
	return n
}

// snapshotSize is about the size of snap's frame.
func snapshotSize(group string, snap presence.Snapshot) int {
	return 160 + len(group) + len(snap.Epoch) + membersSize(snap.Members)
}

// appendSnapshot appends snap's frame to dst.
func (s *Server) appendSnapshot(dst []byte, id uint64, group string, snap presence.Snapshot) []byte {
	dst = protocol.AppendSnapshotStart(dst, protocol.SnapshotHeader{
		ID: id, Group: group, Rev: snap.Rev, Epoch: snap.Epoch, Fresh: snap.Fresh, Online: snap.Online, Total: snap.Total,
	})
	dst = s.snaps.appendMembers(dst, group, snap)
	return protocol.AppendSnapshotEnd(dst)
}
