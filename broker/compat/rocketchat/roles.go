package rocketchat

import (
	"cmp"
	"slices"

	"github.com/presenced/presenced/broker/compat/internal/query"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

var usersInRoleSchema = schema{fields: []field{
	{"role", kindString}, {"roomId", kindString},
	{"offset", kindNumber}, {"count", kindNumber},
	{"sort", kindString}, {"query", kindString},
}}

// validateUsersInRole answers a missing or empty role with the legacy
// error-param-not-provided that the vendor page shows and older clients
// expect; the rest of the schema is checked as the current server does.
func validateUsersInRole(q query.Values) *apiError {
	if p := q["role"]; !p.Array && p.First() == "" {
		return coded(`Query param "role" is required`, "error-param-not-provided")
	}
	return usersInRoleSchema.validate(q)
}

type roleUser struct {
	ID         string          `json:"_id"`
	Username   string          `json:"username"`
	Type       string          `json:"type"`
	Status     protocol.Status `json:"status"`
	Active     bool            `json:"active"`
	Name       string          `json:"name,omitempty"`
	AvatarETag string          `json:"avatarETag,omitempty"`
}

type usersInRoleBody struct {
	Users   []roleUser `json:"users"`
	Total   int        `json:"total"`
	Success bool       `json:"success"`
}

// usersInRole lists the holders of a role sorted by username: users holding
// a global role, or members holding a group role in roomId (in any group
// without roomId).
func (h *Handler) usersInRole(c *call) (any, *apiError) {
	if !h.can(c.user, permAccessPermissions) {
		return nil, noPermission()
	}
	roomID := c.q.Get("roomId")
	if roomID != "" && !h.can(c.user, permViewOtherUserChannels) {
		return nil, coded("Not allowed", codeNotAllowed)
	}
	role, ok := h.dir.Role(c.q.Get("role"))
	if !ok {
		return nil, coded("", "error-invalid-roleId")
	}
	var users []membership.User
	if role.Scope == membership.ScopeGroup {
		seen := map[string]bool{}
		for _, m := range h.dir.MembersInRole(role.ID, roomID) {
			if u, ok := h.dir.User(m.UserID); ok && !seen[u.ID] {
				seen[u.ID] = true
				users = append(users, u)
			}
		}
		slices.SortFunc(users, func(a, b membership.User) int {
			return cmp.Or(cmp.Compare(a.Username, b.Username), cmp.Compare(a.ID, b.ID))
		})
	} else {
		users = h.dir.UsersInRole(role.ID)
	}
	offset, count := pagination(c.q)
	out := []roleUser{}
	for _, u := range page(users, offset, count) {
		st, _, _ := h.cfg.Presence.UserStatus(u.ID)
		out = append(out, roleUser{
			ID: u.ID, Username: u.Username, Type: string(u.Type), Status: st,
			Active: u.Active, Name: u.Name, AvatarETag: avatarETag(u),
		})
	}
	return usersInRoleBody{Users: out, Total: len(users), Success: true}, nil
}
