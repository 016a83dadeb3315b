package membership

import (
	"slices"
	"time"

	"github.com/presenced/presenced/protocol"
)

// UserType tells people from automated accounts.
type UserType string

// User types.
const (
	UserTypeUser UserType = "user"
	UserTypeBot  UserType = "bot"
)

// User is a person or bot that can hold sessions and belong to groups.
type User struct {
	ID string `json:"id"`
	// Seq is a numeric alias assigned once at creation. Vendors with numeric
	// ids (Bitrix24 USER_ID) address the user by it.
	Seq       int64     `json:"seq"`
	Username  string    `json:"username"`
	Name      string    `json:"name,omitempty"`
	AvatarURL string    `json:"avatarUrl,omitempty"`
	UTCOffset float64   `json:"utcOffset"`
	Type      UserType  `json:"type"`
	Active    bool      `json:"active"`
	Roles     []string  `json:"roles,omitempty"` // global roles: admin, user, bot, custom
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// HasRole reports whether the user holds the global role id.
func (u User) HasRole(id string) bool { return slices.Contains(u.Roles, id) }

// GroupType is private (members only) or public.
type GroupType string

// Group types.
const (
	GroupPrivate GroupType = "private"
	GroupPublic  GroupType = "public"
)

// Group is a set of members whose presence is watched together.
type Group struct {
	ID string `json:"id"`
	// Seq is a numeric alias assigned once at creation (Bitrix24 group ID).
	Seq       int64     `json:"seq"`
	Name      string    `json:"name"`
	Type      GroupType `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// MemberRole is the role of a member within a group.
type MemberRole string

// Member roles. Vendors see them as Rocket.Chat room roles (owner, moderator),
// CometChat scopes (admin, moderator, participant) and Bitrix24 roles (A, E, K).
const (
	RoleOwner     MemberRole = "owner"
	RoleModerator MemberRole = "moderator"
	RoleMember    MemberRole = "member"
)

// Member is one user's membership of one group.
type Member struct {
	GroupID string     `json:"groupId"`
	UserID  string     `json:"userId"`
	Role    MemberRole `json:"role"`
	// Roles are extra group-scoped roles (leader, custom ones).
	Roles []string `json:"roles,omitempty"`
	// Seq orders memberships by creation (Bitrix24 lists by membership id).
	Seq      int64     `json:"seq"`
	JoinedAt time.Time `json:"joinedAt"`
}

// HasRole reports whether the member holds the group-scoped role id, either
// as its main role or as an extra one.
func (m Member) HasRole(id string) bool {
	return string(m.Role) == id || slices.Contains(m.Roles, id)
}

// RoleScope says where a role applies.
type RoleScope string

// Role scopes, named as Rocket.Chat names them.
const (
	ScopeGlobal RoleScope = "Users"         // held by users
	ScopeGroup  RoleScope = "Subscriptions" // held by members of a group
)

// Role is a named role. Built-in roles have id = name.
type Role struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Scope       RoleScope `json:"scope"`
	Description string    `json:"description,omitempty"`
	Builtin     bool      `json:"builtin,omitempty"`
}

// BuiltinRoles are present in every store and cannot be deleted.
var BuiltinRoles = []Role{
	{ID: "admin", Name: "admin", Scope: ScopeGlobal, Builtin: true},
	{ID: "user", Name: "user", Scope: ScopeGlobal, Builtin: true},
	{ID: "bot", Name: "bot", Scope: ScopeGlobal, Builtin: true},
	{ID: "owner", Name: "owner", Scope: ScopeGroup, Builtin: true},
	{ID: "moderator", Name: "moderator", Scope: ScopeGroup, Builtin: true},
	{ID: "leader", Name: "leader", Scope: ScopeGroup, Builtin: true},
}

// Token scopes decide what an API token may do.
const (
	ScopeAdmin           = "admin"            // everything
	ScopeMembershipRead  = "membership:read"  // read users, groups, members, roles
	ScopeMembershipWrite = "membership:write" // write users, groups, members, roles; import
	ScopePresenceRead    = "presence:read"    // read presence in bulk
	ScopePresencePublish = "presence:publish" // publish backend status events
	ScopeTokens          = "tokens"           // issue and revoke tokens
	ScopeConnect         = "connect"          // act as the token's user (WebSocket, vendor APIs)
)

// AllScopes lists every valid token scope.
var AllScopes = []string{ScopeAdmin, ScopeMembershipRead, ScopeMembershipWrite,
	ScopePresenceRead, ScopePresencePublish, ScopeTokens, ScopeConnect}

// Token is an API token. Only the SHA-256 of its secret is stored.
type Token struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	UserID string   `json:"userId,omitempty"` // the user it acts as, if any
	Scopes []string `json:"scopes"`
	// Hash is the hex SHA-256 of the whole token string.
	Hash      string     `json:"hash"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// IssuedBy is the id of the token that issued this one ("" when an
	// operator or a JWT did): who may revoke it (Authority.CanManageToken).
	IssuedBy string `json:"issuedBy,omitempty"`
}

// Allows reports whether the token carries scope, or admin.
func (t Token) Allows(scope string) bool {
	return slices.Contains(t.Scopes, ScopeAdmin) || slices.Contains(t.Scopes, scope)
}

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// MaxIDLen is the longest id accepted for users, groups, roles and tokens.
const MaxIDLen = protocol.MaxIDLen

// ValidID reports whether id may name a user, group, role or token: 1 to
// MaxIDLen characters of A-Z, a-z, 0-9, '_' and '-'. The set is what a NATS
// KV key token allows without escaping, and the wire protocol's rule for
// the ids it carries (protocol.ValidID, which checks byte by byte: a
// regexp here took 34 times as long, on every connect, subscribe and
// status event).
func ValidID(id string) bool { return protocol.ValidID(id) }
