package bitrix24

import (
	"context"

	"github.com/presenced/presenced/membership"
)

// Directory reads users, groups and members. *membership.Index implements
// it.
type Directory interface {
	User(id string) (membership.User, bool)
	// UserBySeq finds a user by numeric alias: Bitrix24's USER_ID and the
	// user id of a webhook URL.
	UserBySeq(seq int64) (membership.User, bool)
	// GroupBySeq finds a group by numeric alias: Bitrix24's group ID.
	GroupBySeq(seq int64) (membership.Group, bool)
	Member(group, user string) (membership.Member, bool)
	// Members returns a group's members sorted by Seq.
	Members(group string) []membership.Member
}

// Authenticator checks webhook secrets and OAuth access tokens.
type Authenticator interface {
	// AuthenticateUser checks a webhook secret of the user userID. A bad
	// secret wraps membership.ErrUnauthorized or membership.ErrTokenExpired;
	// any other error is a server failure.
	AuthenticateUser(ctx context.Context, userID, credential string) (membership.User, error)
	// AuthenticateToken resolves an access token, with the same errors.
	AuthenticateToken(ctx context.Context, token string) (membership.Token, error)
}

// Visibility is the authority rule for groups (*membership.Authority).
type Visibility interface {
	// CanWatchGroup reports whether viewer (a user id) may see group: its
	// members and admins. A group it may not is answered like one that
	// does not exist.
	CanWatchGroup(viewer, group string) bool
}

var (
	_ Directory  = (*membership.Index)(nil)
	_ Visibility = (*membership.Authority)(nil)
)
