package ddp

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/broker/compat/rocketchat"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// Methods, named as Rocket.Chat names them.
const (
	methodLogin            = "login"
	methodLogout           = "logout"
	methodSetDefaultStatus = "UserPresence:setDefaultStatus"
	methodOnline           = "UserPresence:online"
	methodAway             = "UserPresence:away"
	methodSetUserStatus    = "setUserStatus"
)

// methodTimeout bounds the store writes of one method.
const methodTimeout = 10 * time.Second

// clientName is the Client of the sessions of DDP connections.
const clientName = "rocketchat-ddp"

// reply is a method's answer: its result (nil: undefined) or error, and
// the documents it changed, sent before the result.
type reply struct {
	result any
	err    *meteorError
	docs   [][]byte
}

// method answers a method message with its documents, result and updated.
func (c *conn) method(ctx context.Context, m message) bool {
	id, okID := m.str("id")
	name, okName := m.str("method")
	params, okParams := m.array("params")
	_, okSeed := m.str("randomSeed")
	if !okID || !okName || !okParams || (m.has("randomSeed") && !okSeed) {
		return c.send(errorMsg(reasonMalformedMethod, m.raw)) == nil
	}
	if ok, alive := c.allow(); !ok {
		return alive && c.send(result(id, nil, errTooManyRequests(c.resetMillis())), updated(id)) == nil
	}
	c.touch()
	ctx, cancel := context.WithTimeout(ctx, methodTimeout)
	defer cancel()
	var r reply
	switch name {
	case methodLogin:
		r = c.login(ctx, params)
	case methodLogout:
		r = c.logout()
	case methodSetDefaultStatus:
		r = c.setDefaultStatus(ctx, params)
	case methodOnline:
		r = c.setConnectionStatus(ctx, protocol.StatusOnline)
	case methodAway:
		r = c.setConnectionStatus(ctx, protocol.StatusAway)
	case methodSetUserStatus:
		r = c.setUserStatus(ctx, params)
	default:
		r = reply{err: errMethodNotFound(name)}
	}
	// As Meteor: the documents a method changed go out before its result
	// (a client that resolves on the result finds them applied), and
	// updated last.
	frames := append(r.docs, result(id, r.result, r.err), updated(id))
	return c.send(frames...) == nil
}

// loginResult is what login answers, as Meteor's accounts do.
type loginResult struct {
	ID           string `json:"id"`
	Token        string `json:"token"`
	TokenExpires jsDate `json:"tokenExpires"`
	Type         string `json:"type"`
}

// jsDate is EJSON's date: {"$date": milliseconds since the epoch}.
type jsDate struct {
	Date int64 `json:"$date"`
}

// login {"resume": token} logs the connection in as the token's user: a
// personal token with the connect scope, or a user JWT. The connection
// becomes a session of that user. Logging in again as the same user
// renews the credential; as another user, it ends the first session.
func (c *conn) login(ctx context.Context, params []json.RawMessage) reply {
	var opts map[string]json.RawMessage
	if len(params) == 0 || json.Unmarshal(params[0], &opts) != nil || opts == nil {
		return reply{err: errMatchFailed}
	}
	raw, ok := opts["resume"]
	if !ok {
		return reply{err: errUnrecognized}
	}
	var token string
	if json.Unmarshal(raw, &token) != nil {
		return reply{err: errMatchFailed}
	}
	cred, err := c.h.cfg.Auth(ctx, token)
	switch {
	case errors.Is(err, membership.ErrTokenExpired):
		return reply{err: errSessionExpired}
	case errors.Is(err, membership.ErrUnauthorized):
		return reply{err: errLoggedOut}
	case err != nil:
		c.h.log.Error("ddp: login", zap.Error(err))
		return reply{err: errInternal}
	case cred.Service() || !cred.Allows(membership.ScopeConnect):
		return reply{err: errLoggedOut} // not a token a user logs in with
	}
	u, ok := c.h.cfg.Users.User(cred.UserID)
	if !ok || !u.Active {
		return reply{err: errLoggedOut}
	}
	var docs [][]byte
	if prev := c.userID(); prev != u.ID {
		if prev != "" {
			docs = c.logout().docs // another user: the first one's session and streams end
		}
		sess, err := c.h.cfg.Presence.Connect(ctx, presence.SessionInfo{User: u.ID, Client: clientName})
		if err != nil {
			c.h.log.Warn("ddp: session not created", zap.String("user", u.ID), zap.Error(err))
			return reply{err: errInternal, docs: docs}
		}
		c.mu.Lock()
		c.sess = sess
		c.mu.Unlock()
		docs = append(docs, document(msgAdded, "users", u.ID, userFields(u)))
	}
	c.mu.Lock()
	c.cred, c.loggedIn = cred, true
	c.mu.Unlock()
	// A token revoked, or its user deleted or deactivated, while the
	// session was stored (an election of the store's leader holds Connect
	// for seconds) found this connection not yet logged in (CloseWhere):
	// check it again now that a revocation finds it.
	if err := c.stillValid(ctx, token); err != nil {
		return reply{err: err, docs: append(docs, c.logout().docs...)}
	}
	c.armExpiry()
	expires := cred.Expires
	if expires.IsZero() {
		expires = c.h.cfg.Now().Add(c.h.cfg.TokenLifetime)
	}
	return reply{
		result: loginResult{ID: u.ID, Token: token, TokenExpires: jsDate{expires.UnixMilli()}, Type: "resume"},
		docs:   docs,
	}
}

// stillValid checks a login's token again: the error a login with it
// now gets, or nil. A store that cannot tell now is no reason to undo a
// login it has just allowed: the revocation, once applied, finds the
// connection logged in.
func (c *conn) stillValid(ctx context.Context, token string) *meteorError {
	cred, err := c.h.cfg.Auth(ctx, token)
	switch {
	case errors.Is(err, membership.ErrTokenExpired):
		return errSessionExpired
	case errors.Is(err, membership.ErrUnauthorized):
		return errLoggedOut
	case err != nil:
		return nil
	}
	if u, ok := c.h.cfg.Users.User(cred.UserID); !ok || !u.Active {
		return errLoggedOut
	}
	return nil
}

// userFields is the user's own document that Meteor publishes to a
// logged-in connection; @rocket.chat/ddp-client reads its username.
func userFields(u membership.User) map[string]string {
	f := map[string]string{"username": u.Username}
	if u.Name != "" {
		f["name"] = u.Name
	}
	return f
}

// logout ends the login: the session enters its grace period and every
// stream ends with not-allowed, as streams need a logged-in user. The
// connection must log in again within LoginTimeout.
func (c *conn) logout() reply {
	c.mu.Lock()
	if !c.loggedIn {
		c.mu.Unlock()
		return reply{}
	}
	user, sess, sub := c.cred.UserID, c.sess, c.sub
	ids := make([]string, 0, len(c.subs))
	for id := range c.subs {
		ids = append(ids, id)
	}
	c.loggedIn, c.cred, c.sess = false, membership.Credential{}, nil
	c.subs, c.watched, c.listID, c.logged = map[string]*stream{}, map[string]int{}, "", 0
	c.mu.Unlock()
	if sub != nil {
		sub.UnwatchUsers(nil)
	}
	c.endSession(sess)
	c.armLogin()
	docs := make([][]byte, 0, len(ids)+1)
	for _, id := range ids {
		docs = append(docs, nosub(id, errNotAllowed))
	}
	docs = append(docs, document(msgRemoved, "users", user, nil))
	return reply{docs: docs}
}

// setDefaultStatus is UserPresence:setDefaultStatus(status): online
// clears the manual status and its text; away, busy and offline
// (invisible) set it, keeping the text. Without a login it does nothing.
func (c *conn) setDefaultStatus(ctx context.Context, params []json.RawMessage) reply {
	user := c.userID()
	if user == "" {
		return reply{}
	}
	var status protocol.Status
	if len(params) == 0 || json.Unmarshal(params[0], &status) != nil {
		return reply{err: errMatchFailed}
	}
	if !status.Valid() {
		return reply{err: errInvalidStatus}
	}
	m := presence.Manual{Status: status}
	if status == protocol.StatusOnline {
		m.Status = ""
	} else if cur, ok := c.h.cfg.Presence.ManualOf(user); ok {
		m.Text = cur.Text
	}
	if r := c.setManual(ctx, user, m); r.err != nil {
		return r
	}
	return reply{result: true}
}

// setConnectionStatus is UserPresence:online and UserPresence:away: the
// status of this connection's session, as the client's idle detection
// sees it. Without a login it does nothing.
func (c *conn) setConnectionStatus(ctx context.Context, status protocol.Status) reply {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return reply{}
	}
	if err := sess.SetStatus(ctx, status, ""); err != nil {
		if errors.Is(err, presence.ErrSessionClosed) {
			return reply{result: false}
		}
		c.h.log.Warn("ddp: session status", zap.Error(err))
		return reply{err: errInternal}
	}
	return reply{result: true}
}

// setUserStatus(statusType, statusText) sets the manual status and/or its
// text: online without text clears both; a status with text sets both; a
// text alone keeps the manual status.
func (c *conn) setUserStatus(ctx context.Context, params []json.RawMessage) reply {
	user := c.userID()
	if user == "" {
		return reply{err: errInvalidUser(methodSetUserStatus)}
	}
	status, okStatus := optString(params, 0)
	text, okText := optString(params, 1)
	if !okStatus || !okText {
		return reply{err: errMatchFailed}
	}
	cur, _ := c.h.cfg.Presence.ManualOf(user)
	var m presence.Manual
	switch {
	case status != nil && *status != "":
		st := protocol.Status(*status)
		if !st.Valid() {
			return reply{err: errInvalidStatus}
		}
		m.Status = st
		switch {
		case text != nil:
			m.Text = rocketchat.StatusText(*text)
		case st != protocol.StatusOnline:
			m.Text = cur.Text
		}
		if st == protocol.StatusOnline {
			m.Status = ""
		}
	case text != nil:
		m = presence.Manual{Status: cur.Status, Expires: cur.Expires, Text: rocketchat.StatusText(*text)}
	default:
		return reply{}
	}
	return c.setManual(ctx, user, m)
}

func (c *conn) setManual(ctx context.Context, user string, m presence.Manual) reply {
	if err := c.h.cfg.Presence.SetManual(ctx, user, m); err != nil {
		if errors.Is(err, presence.ErrInvalid) {
			return reply{err: meteorErr(400, err.Error(), nil)}
		}
		c.h.log.Warn("ddp: set status", zap.String("user", user), zap.Error(err))
		return reply{err: errInternal}
	}
	return reply{}
}

// optString reads an optional string parameter: absent or null is nil.
func optString(params []json.RawMessage, i int) (*string, bool) {
	if i >= len(params) || string(params[i]) == "null" {
		return nil, true
	}
	var s string
	if json.Unmarshal(params[i], &s) != nil {
		return nil, false
	}
	return &s, true
}
