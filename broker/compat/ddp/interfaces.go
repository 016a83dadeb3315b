package ddp

import (
	"context"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
)

// AuthFunc resolves the token of a login {"resume": token}: a personal API
// token or a user JWT. A token that is not valid wraps
// membership.ErrUnauthorized, an expired one membership.ErrTokenExpired;
// any other error is a server failure. It is called from a connection's
// reader, one call at a time per connection.
type AuthFunc func(ctx context.Context, token string) (membership.Credential, error)

// Presence is the presence engine. *presence.Engine implements it. Its
// methods are called concurrently from every connection.
type Presence interface {
	// Connect stores a new session of a user on this node.
	Connect(ctx context.Context, info presence.SessionInfo) (*presence.Session, error)
	// SetManual sets or clears a user's manual status and returns once
	// it is stored.
	SetManual(ctx context.Context, user string, m presence.Manual) error
	// ManualOf returns a user's manual status, if any.
	ManualOf(user string) (presence.Manual, bool)
	// NewSubscriber returns a subscriber for user watches.
	NewSubscriber(cfg presence.SubscriberConfig) *presence.Subscriber
}

// Users reads user records: the username, name and roles that streams
// carry, and whether a user may log in. *membership.Index implements it.
// It must not block on the network.
type Users interface {
	User(id string) (membership.User, bool)
}

// Visibility is the deployment's rule of who may see whose presence, the
// same for every API. *membership.Authority implements it.
type Visibility interface {
	// UserFilter reports, for one viewer, whether each target's presence
	// may be shown. It is asked again for every batch of changes, so a
	// change of membership applies to the next change sent.
	UserFilter(viewer string) func(target string) bool
}

var (
	_ Presence   = (*presence.Engine)(nil)
	_ Users      = (*membership.Index)(nil)
	_ Visibility = (*membership.Authority)(nil)
)
