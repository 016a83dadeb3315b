package rocketchat

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// Limits of users.setStatus.
const (
	maxBodyBytes  = 64 << 10
	maxStatusText = 120 // runes; upstream's setStatusText cuts there
)

type statusBody struct {
	ID               string          `json:"_id"`
	Message          string          `json:"message"`
	ConnectionStatus protocol.Status `json:"connectionStatus"`
	Status           protocol.Status `json:"status"`
	Success          bool            `json:"success"`
}

// getStatus reports the status of the user named by userId, username or
// user, the caller by default. presenced keeps one aggregate status, so
// connectionStatus repeats it.
func (h *Handler) getStatus(c *call) (any, *apiError) {
	params := map[string]string{"userId": c.q.Get("userId"), "username": c.q.Get("username"), "user": c.q.Get("user")}
	u := c.user
	if !isSelf(c.user, params) {
		var e *apiError
		if u, e = h.userFromParams(params); e != nil {
			return nil, e
		}
		if !h.cfg.Visibility.UserFilter(c.user.ID)(u.ID) {
			// A user the caller may not see reads as one that does not
			// exist, as on the native API: neither its id nor its
			// existence shows.
			return nil, userNotFound()
		}
	}
	st, text, _ := h.cfg.Presence.UserStatus(u.ID)
	return statusBody{ID: u.ID, Message: text, ConnectionStatus: st, Status: st, Success: true}, nil
}

type successBody struct {
	Success bool `json:"success"`
}

// setStatus sets the manual status and/or the status message of the caller,
// or of another user for holders of edit-other-user-info. The body is JSON
// or a form: {"status"?, "message"?} with at least one of them a string.
func (h *Handler) setStatus(c *call) (any, *apiError) {
	body := readBody(c.r)
	status, hasStatus := body["status"]
	message, hasMessage := body["message"]
	if !(isString(status) && maybeString(message, hasMessage)) && !(isString(message) && maybeString(status, hasStatus)) {
		return nil, failure("Match error: Failed Match.OneOf, Match.Maybe or Match.Optional validation")
	}
	if h.cfg.StatusWriter == nil {
		return nil, coded("Change status is not allowed", codeNotAllowed)
	}
	params := map[string]string{"userId": str(body["userId"]), "username": str(body["username"]), "user": str(body["user"])}
	u := c.user
	if !isSelf(c.user, params) {
		if !h.can(c.user, permEditOtherUserInfo) {
			return nil, unauthorized()
		}
		var e *apiError
		if u, e = h.userFromParams(params); e != nil {
			return nil, e
		}
	}
	newStatus := protocol.Status(str(status))
	if newStatus != "" && !newStatus.Valid() {
		return nil, coded("Valid status types include online, away, offline, and busy.", "error-invalid-status")
	}
	if newStatus == "" && !isString(message) {
		return successBody{Success: true}, nil
	}
	_, text, _ := h.cfg.Presence.UserStatus(u.ID)
	if isString(message) {
		text = StatusText(message.(string))
	}
	if err := h.cfg.StatusWriter.SetManualStatus(c.ctx, u.ID, newStatus, text); err != nil {
		h.log.Error("rocketchat: set status", zap.String("user", u.ID), zap.Error(err))
		return nil, internalError()
	}
	return successBody{Success: true}, nil
}

// isSelf is upstream's isUserFromParams: no user named, or the caller named.
func isSelf(caller membership.User, p map[string]string) bool {
	id, name, user := p["userId"], p["username"], p["user"]
	return (id == "" && name == "" && user == "") ||
		(id != "" && id == caller.ID) ||
		(name != "" && name == caller.Username) ||
		(user != "" && user == caller.Username)
}

// userFromParams is upstream's getUserFromParams.
func (h *Handler) userFromParams(p map[string]string) (membership.User, *apiError) {
	var u membership.User
	var ok bool
	switch {
	case strings.TrimSpace(p["userId"]) != "":
		u, ok = h.dir.User(p["userId"])
	case strings.TrimSpace(p["username"]) != "":
		u, ok = h.dir.UserByUsername(p["username"])
	case strings.TrimSpace(p["user"]) != "":
		u, ok = h.dir.UserByUsername(p["user"])
	default:
		return u, coded(`The required "userId" or "username" param was not provided`, "error-user-param-not-provided")
	}
	if !ok {
		return u, userNotFound()
	}
	return u, nil
}

// userNotFound is upstream's answer to a user param that names nobody.
func userNotFound() *apiError {
	return coded(`The required "userId" or "username" param provided does not match any users`, "error-invalid-user")
}

// readBody parses a JSON object or a URL-encoded form as upstream's router
// does; anything else, or an unreadable body, is an empty object.
func readBody(r *http.Request) map[string]any {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return map[string]any{}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	out := map[string]any{}
	switch ct {
	case "application/json":
		if json.Unmarshal(raw, &out) != nil {
			return map[string]any{}
		}
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return out
		}
		for k, vs := range form {
			out[k] = vs[len(vs)-1] // Object.fromEntries keeps the last
		}
	}
	return out
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// maybeString is Match.Maybe(String): absent, null or a string.
func maybeString(v any, present bool) bool { return !present || v == nil || isString(v) }

func str(v any) string {
	s, _ := v.(string)
	return s
}

// StatusText trims a status message and cuts it where Rocket.Chat does
// (120 characters) and to what the protocol keeps; its realtime API (package
// ddp) cuts the same way.
func StatusText(s string) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxStatusText {
		s = string([]rune(s)[:maxStatusText])
	}
	for len(s) > protocol.MaxStatusText {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
