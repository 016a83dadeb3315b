package rocketchat

import "github.com/presenced/presenced/membership"

// Rocket.Chat permission ids the endpoints check.
const (
	permAccessPermissions     = "access-permissions"
	permViewOtherUserChannels = "view-other-user-channels"
	permViewPrivateRoom       = "view-p-room"
	permViewJoinedRoom        = "view-joined-room"
	permEditOtherUserInfo     = "edit-other-user-info"
	permBypassRateLimit       = "api-bypass-rate-limit"
)

// roleAdmin is the global role that holds every permission.
const roleAdmin = "admin"

// can reports whether u holds perm: admins hold every permission, everybody
// holds view-joined-room, and Config.Permissions grants others to roles.
func (h *Handler) can(u membership.User, perm string) bool {
	if perm == permViewJoinedRoom || u.HasRole(roleAdmin) {
		return true
	}
	for _, role := range h.perms[perm] {
		if u.HasRole(role) {
			return true
		}
	}
	return false
}
