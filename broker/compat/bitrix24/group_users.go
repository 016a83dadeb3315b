package bitrix24

import (
	"strconv"

	"github.com/presenced/presenced/membership"
)

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
// membership order. A group is visible to those who may watch it, its
// members and admins, whatever its type; to anyone else it does not exist.
func (h *Handler) groupUsers(c *call) (any, *apiError) {
	id := intval(c.params["ID"])
	if id <= 0 {
		return nil, methodError("Wrong socialnetwork group ID")
	}
	g, ok := h.cfg.Directory.GroupBySeq(id)
	if !ok || !h.cfg.Visibility.CanWatchGroup(c.caller.ID, g.ID) {
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
