package rocketchat

import (
	"slices"
	"time"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

var usersPresenceSchema = schema{fields: []field{{"from", kindString}, {"ids", kindStringOrArray}}}

// recentWindow is how far back users.presence?from= may reach before the
// answer falls back to the full list.
const recentWindow = 10 * time.Minute

type presenceUser struct {
	ID         string          `json:"_id"`
	Name       string          `json:"name,omitempty"`
	Username   string          `json:"username"`
	Status     protocol.Status `json:"status"`
	UTCOffset  float64         `json:"utcOffset"`
	StatusText string          `json:"statusText,omitempty"`
	AvatarETag string          `json:"avatarETag,omitempty"`
}

type presenceBody struct {
	Users   []presenceUser `json:"users"`
	Full    bool           `json:"full"`
	Success bool           `json:"success"`
}

// usersPresence answers, in upstream's order of precedence: nothing when
// presence broadcast is off; the listed ids that are not offline; everyone
// but the caller whose status changed since a recent from (offline
// included); else everyone not offline, full.
func (h *Handler) usersPresence(c *call) (any, *apiError) {
	if h.cfg.PresenceBroadcastDisabled {
		return presenceBody{Users: []presenceUser{}, Full: true, Success: true}, nil
	}
	out := []presenceUser{}
	visible := h.cfg.Visibility.UserFilter(c.user.ID) // hidden users read as offline: absent
	if p, ok := c.q["ids"]; ok && (p.Array || p.First() != "") {
		ids := c.q.List("ids")
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if u, ok := h.dir.User(id); ok && visible(id) {
				if pu := h.presenceOf(u); pu.Status.Online() {
					out = append(out, pu)
				}
			}
		}
		return presenceBody{Users: out, Full: false, Success: true}, nil
	}
	if from, ok := parseJSDate(c.q.Get("from")); ok && h.now().Sub(from) < recentWindow {
		ids := slices.Clone(h.cfg.Presence.ChangedSince(from))
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for _, id := range ids {
			if u, ok := h.dir.User(id); ok && id != c.user.ID && u.Username != "" && visible(id) {
				out = append(out, h.presenceOf(u))
			}
		}
		return presenceBody{Users: out, Full: false, Success: true}, nil
	}
	for _, u := range h.dir.Users() {
		if u.Username == "" || !visible(u.ID) {
			continue
		}
		if pu := h.presenceOf(u); pu.Status.Online() {
			out = append(out, pu)
		}
	}
	return presenceBody{Users: out, Full: true, Success: true}, nil
}

func (h *Handler) presenceOf(u membership.User) presenceUser {
	st, text, _ := h.cfg.Presence.UserStatus(u.ID)
	return presenceUser{
		ID: u.ID, Name: u.Name, Username: u.Username, Status: st,
		UTCOffset: u.UTCOffset, StatusText: text, AvatarETag: avatarETag(u),
	}
}
