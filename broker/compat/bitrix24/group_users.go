package bitrix24

import (
	"strconv"

	"github.com/presenced/presenced/membership"
)

// roleAdmin is the global role that sees every group.
const roleAdmin = "admin"

// Bitrix24 group roles (SONET_ROLES_*) of the three member roles.
const (
	roleOwner     = "A"
	roleModerator = "E"
	roleMember    = "K"
)

func roleOf(r membership.MemberRole) string {
	switch r {
	case membership.RoleOwner:
		return roleOwner
	case membership.RoleModerator:
		return roleModerator
	}
	return roleMember
}

type groupUser struct {
	UserID string `json:"USER_ID"`
	Role   string `json:"ROLE"`
}

// groupUsers is sonet_group.user.get: the active members of group ID in
// membership order. A private group is visible to its members and admins
// only; to anyone else it does not exist.
func (h *Handler) groupUsers(c *call) (any, *apiError) {
	id := intval(c.params["ID"])
	if id <= 0 {
		return nil, methodError("Wrong socialnetwork group ID")
	}
	g, ok := h.cfg.Directory.GroupBySeq(id)
	if !ok || !h.visible(g, c.caller) {
		return nil, methodError("Socialnetwork group not found")
	}
	out := []groupUser{}
	for _, m := range h.cfg.Directory.Members(g.ID) {
		if u, ok := h.cfg.Directory.User(m.UserID); ok && u.Active {
			out = append(out, groupUser{UserID: strconv.FormatInt(u.Seq, 10), Role: roleOf(m.Role)})
		}
	}
	return out, nil
}

func (h *Handler) visible(g membership.Group, u membership.User) bool {
	if g.Type != membership.GroupPrivate || u.HasRole(roleAdmin) {
		return true
	}
	_, member := h.cfg.Directory.Member(g.ID, u.ID)
	return member
}
