package rocketchat

import (
	"context"
	"time"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// Users reads user records. *membership.Index implements it.
type Users interface {
	User(id string) (membership.User, bool)
	UserByUsername(name string) (membership.User, bool)
	// Users returns every user sorted by id.
	Users() []membership.User
}

// Groups reads groups and their members. *membership.Index implements it.
type Groups interface {
	Group(id string) (membership.Group, bool)
	Member(group, user string) (membership.Member, bool)
	// Members returns a group's members sorted by Seq.
	Members(group string) []membership.Member
}

// Roles reads roles and their holders. *membership.Index implements it.
type Roles interface {
	Role(id string) (membership.Role, bool)
	// UsersInRole returns the holders of a global role sorted by username.
	UsersInRole(role string) []membership.User
	// MembersInRole returns the holders of a group-scoped role in group, or
	// in any group when group is "".
	MembersInRole(role, group string) []membership.Member
}

// Directory is everything the handler reads from membership.
type Directory interface {
	Users
	Groups
	Roles
}

// StatusReader reads presence. Calls come from request goroutines
// concurrently and must not block on the network.
type StatusReader interface {
	// UserStatus returns a user's aggregate status, status text and the time
	// the status last changed (zero if never). Unknown users are offline.
	UserStatus(user string) (status protocol.Status, text string, changed time.Time)
	// ChangedSince returns the ids of users whose status changed at or after
	// t, offline included.
	ChangedSince(t time.Time) []string
}

// StatusWriter sets a user's manual status for users.setStatus.
type StatusWriter interface {
	// SetManualStatus sets user's manual status and status text. An empty
	// status keeps the current manual status and changes only the text.
	// It returns once the change is stored.
	SetManualStatus(ctx context.Context, user string, status protocol.Status, text string) error
}

// Visibility is the deployment's rule of who may see whose presence and
// watch which group, the same for every API. *membership.Authority
// implements it.
type Visibility interface {
	// UserFilter reports, for one viewer, whether each target's presence
	// may be shown; a hidden user reads as offline.
	UserFilter(viewer string) func(target string) bool
	// CanWatchGroup reports whether viewer may see group's presence; a
	// group it may not reads as missing.
	CanWatchGroup(viewer, group string) bool
}

var _ Visibility = (*membership.Authority)(nil)

// Authenticator checks the X-User-Id and X-Auth-Token pair.
type Authenticator interface {
	// AuthenticateUser returns the user whose id is userID when credential
	// is valid for them. A bad pair wraps membership.ErrUnauthorized or
	// membership.ErrTokenExpired; any other error is a server failure.
	AuthenticateUser(ctx context.Context, userID, credential string) (membership.User, error)
}

var _ Directory = (*membership.Index)(nil)
