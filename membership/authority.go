package membership

import (
	"fmt"
	"slices"
	"time"
)

// One rule per authority question, written here once and used by every
// API (native REST, WebSocket, Rocket.Chat's realtime API, every vendor's
// REST): who may see whose presence, who may watch a group, who may issue,
// see or revoke which token.

// Visibility is a deployment's rule for whose presence a user may see.
type Visibility string

// Visibilities.
const (
	// VisibilitySharedGroups: a user sees the presence of the users they
	// share a group with (the default).
	VisibilitySharedGroups Visibility = "shared-groups"
	// VisibilityAll: every user sees everyone's presence, as Rocket.Chat
	// does by default.
	VisibilityAll Visibility = "all"
)

// Credential is who makes a request, as far as authority goes: an API
// token (TokenID set), or a user by JWT (TokenID empty).
type Credential struct {
	// UserID is the user acted for; "" for a service token.
	UserID string
	// TokenID is the API token's id; "" for a JWT.
	TokenID string
	// Scopes are what the credential allows.
	Scopes []string
	// Expires is when the credential stops working (zero: never).
	Expires time.Time
}

// Allows reports whether the credential holds scope, or admin.
func (c Credential) Allows(scope string) bool {
	return slices.Contains(c.Scopes, ScopeAdmin) || slices.Contains(c.Scopes, scope)
}

// Service reports a service credential: a token bound to no user.
func (c Credential) Service() bool { return c.UserID == "" }

// Authority decides the authority questions from an Index.
type Authority struct {
	ix  *Index
	vis Visibility
}

// NewAuthority returns the authority of ix under visibility vis (empty:
// VisibilitySharedGroups).
func NewAuthority(ix *Index, vis Visibility) (*Authority, error) {
	switch vis {
	case "":
		vis = VisibilitySharedGroups
	case VisibilitySharedGroups, VisibilityAll:
	default:
		return nil, fmt.Errorf("%w: presence visibility %q: want %s or %s", ErrInvalid, vis, VisibilitySharedGroups, VisibilityAll)
	}
	return &Authority{ix: ix, vis: vis}, nil
}

// Visibility is the deployment's rule.
func (a *Authority) Visibility() Visibility { return a.vis }

// IsAdmin reports whether user holds the global admin role.
func (a *Authority) IsAdmin(user string) bool {
	u, ok := a.ix.User(user)
	return ok && u.Active && u.HasRole(ScopeAdmin)
}

// SeesEveryone reports whether viewer may see every user's presence and
// watch every group, whatever the visibility: a service (a token bound to
// no user; viewer "") or an admin user.
func (a *Authority) SeesEveryone(viewer string) bool {
	return viewer == "" || a.IsAdmin(viewer)
}

// CanSeeUser reports whether viewer (a user id; "" for a service) may see
// target's presence: themselves, services and admins see everyone, and
// others the users they share a group with (or everyone under
// VisibilityAll). A user who may not is shown offline, the same whether
// the user exists or not.
func (a *Authority) CanSeeUser(viewer, target string) bool {
	return a.UserFilter(viewer)(target)
}

// UserFilter returns CanSeeUser for one viewer and many targets, with the
// viewer's groups looked up once.
func (a *Authority) UserFilter(viewer string) func(target string) bool {
	if a.SeesEveryone(viewer) || a.vis == VisibilityAll {
		return func(string) bool { return true }
	}
	mine := map[string]bool{}
	for _, m := range a.ix.GroupsOf(viewer) {
		mine[m.GroupID] = true
	}
	return func(target string) bool {
		if target == viewer {
			return true
		}
		for _, m := range a.ix.GroupsOf(target) {
			if mine[m.GroupID] {
				return true
			}
		}
		return false
	}
}

// CanWatchGroup reports whether viewer (a user id; "" for a service) may
// see group's presence and counts: its members, admins and services.
// Callers that may not are answered alike whether the group exists or not.
func (a *Authority) CanWatchGroup(viewer, group string) bool {
	return a.SeesEveryone(viewer) || a.ix.IsMember(group, viewer)
}

// CanPublishFor reports whether by may state user's status through the
// backend API: a token bound to no user (a backend) or with the admin
// scope for anyone, a token bound to a user for that user only.
func (a *Authority) CanPublishFor(by Credential, user string) bool {
	return by.Service() || by.Allows(ScopeAdmin) || by.UserID == user
}

// ErrForbidden is returned by the token rules: the credential may not do
// that. Its message says why.
var ErrForbidden = fmt.Errorf("membership: forbidden")

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrForbidden}, args...)...)
}

// CheckIssue decides whether by may issue a token as spec asks, and
// completes spec: the token is recorded as issued by by's token, and one
// issued by an expiring credential expires with it at the latest. Only a
// credential with the admin scope issues tokens for other users, any
// scope, any lifetime; others issue only for their own user (a service
// token: only unbound tokens), only scopes they hold, never a longer life
// than their own.
func (a *Authority) CheckIssue(by Credential, spec *TokenSpec) error {
	spec.IssuedBy = by.TokenID
	if by.Allows(ScopeAdmin) {
		return nil
	}
	if spec.UserID != by.UserID {
		if by.UserID == "" {
			return forbidden("a token bound to no user issues only tokens bound to no user")
		}
		return forbidden("a token may issue tokens only for its own user %q", by.UserID)
	}
	for _, sc := range spec.Scopes {
		if !by.Allows(sc) {
			return forbidden("cannot grant scope %s that this token lacks", sc)
		}
	}
	if !by.Expires.IsZero() {
		switch {
		case spec.ExpiresAt == nil:
			exp := by.Expires
			spec.ExpiresAt = &exp
		case spec.ExpiresAt.After(by.Expires):
			return forbidden("expiresAt must not be after this token's own expiry %s", by.Expires.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// CanManageToken reports whether by may see and revoke t: the admin scope
// any; others only their own token and the tokens it issued, directly or
// through tokens it issued.
func (a *Authority) CanManageToken(by Credential, t Token) bool {
	if by.Allows(ScopeAdmin) {
		return true
	}
	if by.TokenID == "" {
		return false
	}
	for id, hops := t.ID, 0; id != "" && hops < maxIssuers; hops++ {
		if id == by.TokenID {
			return true
		}
		parent, ok := a.ix.Token(id)
		if !ok {
			return false
		}
		id = parent.IssuedBy
	}
	return false
}
