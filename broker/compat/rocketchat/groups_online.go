package rocketchat

import (
	"encoding/json"

	"github.com/presenced/presenced/membership"
)

var groupsOnlineSchema = schema{fields: []field{{"_id", kindString}, {"query", kindString}}}

type onlineUser struct {
	ID       string `json:"_id"`
	Username string `json:"username"`
}

type groupsOnlineBody struct {
	Online  []onlineUser `json:"online"`
	Success bool         `json:"success"`
}

// groupsOnline lists the members of a private group who are not offline, the
// caller included. Those who may watch the group (members and admins) may
// ask; to anyone else a group they may not see reads as missing.
func (h *Handler) groupsOnline(c *call) (any, *apiError) {
	id := c.q.Get("_id")
	if id == "" && !h.cfg.RejectLegacyQuery {
		id = legacyQueryID(c.q.Get("query"))
	}
	if id == "" {
		return nil, failure("Invalid query")
	}
	g, ok := h.dir.Group(id)
	if !ok || g.Type != membership.GroupPrivate || !h.cfg.Visibility.CanWatchGroup(c.user.ID, g.ID) {
		return nil, failure("Group does not exists")
	}
	_, member := h.dir.Member(g.ID, c.user.ID)
	if !(member && h.can(c.user, permViewJoinedRoom)) && !h.can(c.user, permViewPrivateRoom) {
		return nil, coded("Not Allowed", codeNotAllowed)
	}
	online := []onlineUser{}
	for _, m := range h.dir.Members(g.ID) {
		u, ok := h.dir.User(m.UserID)
		if !ok {
			continue
		}
		if st, _, _ := h.cfg.Presence.UserStatus(u.ID); st.Online() {
			online = append(online, onlineUser{ID: u.ID, Username: u.Username})
		}
	}
	return groupsOnlineBody{Online: online, Success: true}, nil
}

// legacyQueryID reads the pre-7.0 query={"_id":"…"} form. Only a query that
// holds nothing but a string _id is honoured: it was raw Mongo JSON upstream,
// and anything else would be an operator presenced does not have.
func legacyQueryID(raw string) string {
	if raw == "" {
		return ""
	}
	var q map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &q) != nil || len(q) != 1 {
		return ""
	}
	var id string
	if json.Unmarshal(q["_id"], &id) != nil {
		return ""
	}
	return id
}
