package membership

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"unicode/utf8"
)

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

func checkID(field, id string) error {
	if !ValidID(id) {
		return invalid(field, "must be 1 to %d characters of A-Z, a-z, 0-9, '_' or '-'", MaxIDLen)
	}
	return nil
}

func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	if len(s) > max {
		return invalid(field, "must be at most %d bytes", max)
	}
	return nil
}

func (x *Index) validateUser(u User) error {
	if err := checkID("id", u.ID); err != nil {
		return err
	}
	if !usernamePattern.MatchString(u.Username) {
		return invalid("username", "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@' or '-'")
	}
	if other, ok := x.UserByUsername(u.Username); ok && other.ID != u.ID {
		return invalid("username", "%q is taken", u.Username)
	}
	if err := checkText("name", u.Name, 256); err != nil {
		return err
	}
	if u.AvatarURL != "" {
		p, err := url.Parse(u.AvatarURL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || len(u.AvatarURL) > 2048 {
			return invalid("avatarUrl", "must be an http or https URL of at most 2048 bytes")
		}
	}
	if math.IsNaN(u.UTCOffset) || u.UTCOffset < -14 || u.UTCOffset > 14 {
		return invalid("utcOffset", "must be between -14 and 14 hours")
	}
	if u.Type != UserTypeUser && u.Type != UserTypeBot {
		return invalid("type", "must be %q or %q", UserTypeUser, UserTypeBot)
	}
	for _, r := range u.Roles {
		role, ok := x.Role(r)
		if !ok {
			return invalid("roles", "unknown role %q", r)
		}
		if role.Scope != ScopeGlobal {
			return invalid("roles", "role %q is scoped to groups", r)
		}
	}
	return nil
}

func validateGroup(g Group) error {
	if err := checkID("id", g.ID); err != nil {
		return err
	}
	if g.Name == "" {
		return invalid("name", "is required")
	}
	if err := checkText("name", g.Name, 256); err != nil {
		return err
	}
	if g.Type != GroupPrivate && g.Type != GroupPublic {
		return invalid("type", "must be %q or %q", GroupPrivate, GroupPublic)
	}
	return nil
}

func (x *Index) validateMember(m Member) error {
	if err := checkID("groupId", m.GroupID); err != nil {
		return err
	}
	if err := checkID("userId", m.UserID); err != nil {
		return err
	}
	switch m.Role {
	case RoleOwner, RoleModerator, RoleMember:
	default:
		return invalid("role", "must be %q, %q or %q", RoleOwner, RoleModerator, RoleMember)
	}
	for _, r := range m.Roles {
		role, ok := x.Role(r)
		if !ok {
			return invalid("roles", "unknown role %q", r)
		}
		if role.Scope != ScopeGroup {
			return invalid("roles", "role %q is not scoped to groups", r)
		}
	}
	return nil
}

func validateRole(r Role) error {
	if err := checkID("id", r.ID); err != nil {
		return err
	}
	if r.Name == "" {
		return invalid("name", "is required")
	}
	if err := checkText("name", r.Name, 128); err != nil {
		return err
	}
	if err := checkText("description", r.Description, 1024); err != nil {
		return err
	}
	if r.Scope != ScopeGlobal && r.Scope != ScopeGroup {
		return invalid("scope", "must be %q or %q", ScopeGlobal, ScopeGroup)
	}
	return nil
}

func validateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return invalid("scopes", "at least one scope is required")
	}
	for _, sc := range scopes {
		if !slices.Contains(AllScopes, sc) {
			return invalid("scopes", "unknown scope %q (known: %v)", sc, AllScopes)
		}
	}
	return nil
}
