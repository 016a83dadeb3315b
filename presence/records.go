package presence

import (
	"strings"
	"time"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// Key layout of the presence bucket. Ids follow membership.ValidID, so they
// never contain '.' and every key splits unambiguously.
//
//	s.<user>.<session>   sessionRecord: one connection on one node
//	b.<user>.<source>    sessionRecord: one backend source (counts as a session)
//	m.<user>             manualRecord: status set by hand
//	n.<node>             leaseRecord: a node's lease
//	members.<g>.<u>      membership.Member, sourced from the membership bucket
//	epoch                the name of this incarnation of the stream (epoch.go)
//	purged               revision below which delete markers may be purged
const (
	prefixSession = "s."
	prefixSource  = "b."
	prefixManual  = "m."
	prefixLease   = "n."
	keyEpoch      = "epoch"
	keyPurged     = "purged"
)

// keyKind says what a key of the presence bucket holds.
type keyKind uint8

const (
	kindUnknown keyKind = iota
	kindSession
	kindSource
	kindManual
	kindLease
	kindMember
	kindEpoch
	kindPurged
)

func (k keyKind) String() string {
	switch k {
	case kindSession:
		return "session"
	case kindSource:
		return "source"
	case kindManual:
		return "manual"
	case kindLease:
		return "lease"
	case kindMember:
		return "member"
	case kindEpoch:
		return "epoch"
	case kindPurged:
		return "purged"
	}
	return "unknown"
}

func sessionKey(user, session string) string { return prefixSession + user + "." + session }
func sourceKey(user, source string) string   { return prefixSource + user + "." + source }
func manualKey(user string) string           { return prefixManual + user }
func leaseKey(node string) string            { return prefixLease + node }

// parseKey splits a presence bucket key. For sessions and sources a is the
// user and b the session or source id; for manual statuses a is the user; for
// leases a is the node; for members a is the group and b the user.
func parseKey(key string) (kind keyKind, a, b string) {
	switch {
	case key == keyEpoch:
		return kindEpoch, "", ""
	case key == keyPurged:
		return kindPurged, "", ""
	case strings.HasPrefix(key, prefixSession):
		if a, b, ok := splitPair(key[len(prefixSession):]); ok {
			return kindSession, a, b
		}
	case strings.HasPrefix(key, prefixSource):
		if a, b, ok := splitPair(key[len(prefixSource):]); ok {
			return kindSource, a, b
		}
	case strings.HasPrefix(key, prefixManual):
		if a := key[len(prefixManual):]; validID(a) {
			return kindManual, a, ""
		}
	case strings.HasPrefix(key, prefixLease):
		if a := key[len(prefixLease):]; validID(a) {
			return kindLease, a, ""
		}
	default:
		if g, u, ok := membership.ParseMemberKey(key); ok {
			return kindMember, g, u
		}
	}
	return kindUnknown, "", ""
}

func splitPair(s string) (a, b string, ok bool) {
	a, b, ok = strings.Cut(s, ".")
	if !ok || !validID(a) || !validID(b) {
		return "", "", false
	}
	return a, b, true
}

// validID is membership.ValidID without a regular expression: every entry
// of the stream passes through it.
func validID(id string) bool {
	if len(id) == 0 || len(id) > membership.MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// sessionRecord is the value of an s. (session) or b. (backend source) key.
type sessionRecord struct {
	User string `json:"user"`
	// Session is the session id, or the source id of a backend source.
	Session string `json:"session"`
	// Node and Inst name the node incarnation that owns a session. A
	// session counts only while the lease n.<node> carries the same Inst,
	// or while it lingers. Backend sources have neither.
	Node   string          `json:"node,omitempty"`
	Inst   string          `json:"inst,omitempty"`
	Status protocol.Status `json:"status"`
	Text   string          `json:"text,omitempty"`
	Device string          `json:"device,omitempty"`
	Client string          `json:"client,omitempty"`
	// Since is when this session's status began, carried over from an
	// earlier entry; zero means "the time this entry was stored".
	Since time.Time `json:"since,omitzero"`
	// Expires is set on a session whose node shut down in its grace period
	// (a session closed on a running node is held by the node, unwritten:
	// see grace.go) and on a backend source with a TTL. The sweeper deletes
	// the key once it is due.
	Expires time.Time `json:"expires,omitzero"`
	// Auto marks a session the owning node turned away for inactivity.
	Auto bool `json:"auto,omitempty"`
}

// manualRecord is the value of an m. key: a status set by hand.
type manualRecord struct {
	// Status is busy, away, offline (invisible) or empty (text only).
	Status  protocol.Status `json:"status,omitempty"`
	Text    string          `json:"text,omitempty"`
	Since   time.Time       `json:"since,omitzero"`
	Expires time.Time       `json:"expires,omitzero"`
}

// leaseRecord is the value of an n. key: a node's lease.
type leaseRecord struct {
	Node      string    `json:"node"`
	Inst      string    `json:"inst"`
	Refreshed time.Time `json:"refreshed"`
	Expires   time.Time `json:"expires"`
}
