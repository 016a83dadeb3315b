package cometchat

import (
	"context"
	"time"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// Directory reads groups, members and users. *membership.Index implements
// it.
type Directory interface {
	User(id string) (membership.User, bool)
	Group(id string) (membership.Group, bool)
	// Members returns a group's members sorted by Seq.
	Members(group string) []membership.Member
}

// StatusReader reads presence. Calls come from request goroutines
// concurrently and must not block on the network.
type StatusReader interface {
	// UserStatus returns a user's aggregate status, status text and the time
	// the status last changed. Unknown users are offline.
	UserStatus(user string) (status protocol.Status, text string, changed time.Time)
}

// Authenticator resolves the apikey header.
type Authenticator interface {
	// AuthenticateToken returns the API token whose secret is token. A bad
	// or expired token wraps membership.ErrUnauthorized or
	// membership.ErrTokenExpired; any other error is a server failure.
	AuthenticateToken(ctx context.Context, token string) (membership.Token, error)
}

// Visibility is the authority rule for groups (*membership.Authority).
type Visibility interface {
	// CanWatchGroup reports whether viewer (a user id; "" for a key bound
	// to no user) may see group's members' presence. A group it may not
	// is answered like one that does not exist.
	CanWatchGroup(viewer, group string) bool
}

var (
	_ Directory  = (*membership.Index)(nil)
	_ Visibility = (*membership.Authority)(nil)
)
