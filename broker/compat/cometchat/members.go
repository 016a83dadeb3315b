package cometchat

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/presenced/presenced/broker/compat/internal/query"
	"github.com/presenced/presenced/membership"
)

// Paging limits of list-group-members.
const (
	defaultPerPage = 100
	maxPerPage     = 1000
)

// CometChat member scopes and presence values.
const (
	scopeAdmin       = "admin"
	scopeModerator   = "moderator"
	scopeParticipant = "participant"
	statusAvailable  = "available"
	statusOffline    = "offline"
	appRoleDefault   = "default"
)

// scopeOf maps a presenced member role to a CometChat scope.
func scopeOf(r membership.MemberRole) string {
	switch r {
	case membership.RoleOwner:
		return scopeAdmin
	case membership.RoleModerator:
		return scopeModerator
	}
	return scopeParticipant
}

type member struct {
	UID       string `json:"uid"`
	Name      string `json:"name"`
	Avatar    string `json:"avatar,omitempty"`
	Status    string `json:"status"`
	Role      string `json:"role"`
	Scope     string `json:"scope"`
	JoinedAt  int64  `json:"joinedAt"`
	CreatedAt int64  `json:"createdAt"`
	UpdatedAt int64  `json:"updatedAt,omitempty"`
}

type pagination struct {
	Total       int `json:"total"`
	Count       int `json:"count"`
	PerPage     int `json:"per_page"`
	CurrentPage int `json:"current_page"`
	TotalPages  int `json:"total_pages"`
}

type cursor struct {
	UpdatedAt int64  `json:"updatedAt"`
	Affix     string `json:"affix"`
}

type membersBody struct {
	Data []member `json:"data"`
	Meta struct {
		Pagination pagination `json:"pagination"`
	} `json:"meta"`
	Cursor cursor `json:"cursor"`
}

// listQuery is a validated member query.
type listQuery struct {
	perPage, page int
	status        string          // "" = any
	scopes        map[string]bool // nil = any
}

// parseListQuery validates perPage, page, status and scopes the way
// Laravel's validator reports them; empty values count as absent.
func parseListQuery(q query.Values) (listQuery, *apiError) {
	lq := listQuery{perPage: defaultPerPage, page: 1}
	details := map[string][]string{}
	intParam := func(name, label string, dst *int, hi int) {
		p, ok := q[name]
		if !ok || (!p.Array && p.First() == "") {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(p.First()))
		switch {
		case p.Array || err != nil:
			details[name] = []string{fmt.Sprintf("The %s must be an integer.", label)}
		case n < 1:
			details[name] = []string{fmt.Sprintf("The %s must be at least 1.", label)}
		case hi > 0 && n > hi:
			details[name] = []string{fmt.Sprintf("The %s may not be greater than %d.", label, hi)}
		default:
			*dst = n
		}
	}
	intParam("perPage", "per page", &lq.perPage, maxPerPage)
	intParam("page", "page", &lq.page, 0)
	if p, ok := q["status"]; ok && (p.Array || p.First() != "") {
		if s := p.First(); p.Array || (s != statusAvailable && s != statusOffline) {
			details["status"] = []string{"The selected status is invalid."}
		} else {
			lq.status = s
		}
	}
	if scopes := q.List("scopes"); len(scopes) > 0 {
		lq.scopes = map[string]bool{}
		for i, s := range scopes {
			switch s {
			case scopeAdmin, scopeModerator, scopeParticipant:
				lq.scopes[s] = true
			default:
				key := fmt.Sprintf("scopes.%d", i)
				details[key] = []string{fmt.Sprintf("The selected %s is invalid.", key)}
			}
		}
	}
	if len(details) > 0 {
		return lq, badRequest(details)
	}
	return lq, nil
}

// members lists a group's active members in membership order, filtered by
// scope and by status (available = not offline), one page at a time.
func (h *Handler) members(viewer, guid string, q query.Values) (any, *apiError) {
	lq, e := parseListQuery(q)
	if e != nil {
		return nil, e
	}
	g, ok := h.cfg.Directory.Group(guid)
	if !ok || !h.cfg.Visibility.CanWatchGroup(viewer, g.ID) {
		return nil, newError(http.StatusNotFound, codeGUIDNotFound,
			fmt.Sprintf("The GUID %s does not exist, please make sure you have created a group with GUID %s.", guid, guid),
			fmt.Sprintf("The GUID %s does not exist, so please make sure you have created a group with GUID %s.", guid, guid))
	}
	var all []member
	for _, m := range h.cfg.Directory.Members(g.ID) {
		scope := scopeOf(m.Role)
		if lq.scopes != nil && !lq.scopes[scope] {
			continue
		}
		u, ok := h.cfg.Directory.User(m.UserID)
		if !ok || !u.Active {
			continue
		}
		status := statusOffline
		if st, _, _ := h.cfg.Presence.UserStatus(u.ID); st.Online() {
			status = statusAvailable
		}
		if lq.status != "" && lq.status != status {
			continue
		}
		name := u.Name
		if name == "" {
			name = u.Username
		}
		mb := member{
			UID: u.ID, Name: name, Avatar: u.AvatarURL, Status: status, Role: appRoleDefault,
			Scope: scope, JoinedAt: m.JoinedAt.Unix(), CreatedAt: u.CreatedAt.Unix(),
		}
		if !u.UpdatedAt.IsZero() {
			mb.UpdatedAt = u.UpdatedAt.Unix()
		}
		all = append(all, mb)
	}
	var body membersBody
	body.Data = []member{}
	if lq.page <= len(all) { // bounds (page-1)*perPage before it can overflow
		if start := (lq.page - 1) * lq.perPage; start < len(all) {
			body.Data = all[start:min(start+lq.perPage, len(all))]
		}
	}
	body.Meta.Pagination = pagination{
		Total: len(all), Count: len(body.Data), PerPage: lq.perPage, CurrentPage: lq.page,
		TotalPages: max(1, (len(all)+lq.perPage-1)/lq.perPage),
	}
	body.Cursor = cursor{UpdatedAt: h.cfg.Now().Unix(), Affix: "prepend"}
	return body, nil
}
