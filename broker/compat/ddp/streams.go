package ddp

import (
	"encoding/json"
	"errors"

	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// Streams: Rocket.Chat's streamer publications, subscribed as
// sub(name, [eventName, options]); every event is a "changed" message of
// the collection named like the stream.
const (
	// streamUserPresence: eventName a user id → changed {id: uid,
	// fields: {uid, args: [[username, code, statusText]], eventName: uid}}
	// on every change of that user. The web client subscribes with
	// eventName "" and options {added: [ids], removed: [ids]} instead:
	// the first such subscription of a connection holds a list of users
	// and is ready; later ones edit the list and end at once (nosub).
	streamUserPresence = "stream-user-presence"
	// streamNotifyLogged: eventName "user-status" → changed {id: "id",
	// fields: {eventName: "user-status", args: [[uid, username, code,
	// statusText, name, roles]]}} on every change the caller may see.
	// Other event names are accepted and stay silent.
	streamNotifyLogged = "stream-notify-logged"
	eventUserStatus    = "user-status"
)

// statusCode is a status as the streams carry it, core-typings' presence
// code: offline 0, online 1, away 2, busy 3.
func statusCode(s protocol.Status) int {
	switch s {
	case protocol.StatusOnline:
		return 1
	case protocol.StatusAway:
		return 2
	case protocol.StatusBusy:
		return 3
	}
	return 0 // offline
}

type streamKind int

const (
	kindUser       streamKind = iota // stream-user-presence of one user
	kindUserList                     // stream-user-presence of the web client's list
	kindUserStatus                   // stream-notify-logged user-status
	kindSilent                       // stream-notify-logged of another event
)

// stream is one subscription of a connection.
type stream struct {
	kind streamKind
	user string          // kindUser: whom it watches ("" if not a valid id)
	list map[string]bool // kindUserList
}

// streamOptions is a subscription's second parameter: a boolean
// (useCollection) or an object.
type streamOptions struct {
	UseCollection bool            `json:"useCollection"`
	Args          json.RawMessage `json:"args"`
	Added         []string        `json:"added"`
	Removed       []string        `json:"removed"`
}

func parseOptions(params []json.RawMessage) (streamOptions, bool) {
	var o streamOptions
	if len(params) < 2 || string(params[1]) == "null" {
		return o, true
	}
	if json.Unmarshal(params[1], &o.UseCollection) == nil {
		return o, true
	}
	return o, json.Unmarshal(params[1], &o) == nil
}

// subscribe answers a sub message with ready, or nosub with an error.
func (c *conn) subscribe(m message) bool {
	id, okID := m.str("id")
	name, okName := m.str("name")
	params, okParams := m.array("params")
	if !okID || !okName || !okParams {
		return c.send(errorMsg(reasonMalformedSub, m.raw)) == nil
	}
	c.mu.Lock()
	_, running := c.subs[id]
	c.mu.Unlock()
	if running {
		return true // Meteor ignores a sub whose id runs already
	}
	if ok, alive := c.allow(); !ok {
		return alive && c.send(nosub(id, errTooManyRequests(c.resetMillis()))) == nil
	}
	c.touch()
	if name != streamUserPresence && name != streamNotifyLogged {
		return c.send(nosub(id, errSubNotFound(name))) == nil
	}
	var event string
	if len(params) > 0 && json.Unmarshal(params[0], &event) != nil {
		return c.send(nosub(id, errInvalidEvent)) == nil
	}
	opts, ok := parseOptions(params)
	if !ok {
		return c.send(nosub(id, errMatchFailed)) == nil
	}
	if name == streamNotifyLogged && event == "" {
		return c.send(nosub(id, errInvalidEvent)) == nil
	}
	if c.userID() == "" {
		return c.send(nosub(id, errNotAllowed)) == nil // streams need a login
	}
	if err := c.ensureSubscriber(); err != nil {
		return c.send(nosub(id, errInternal)) == nil
	}
	switch {
	case name == streamNotifyLogged && event == eventUserStatus:
		return c.start(id, name, event, opts, &stream{kind: kindUserStatus})
	case name == streamNotifyLogged:
		return c.start(id, name, event, opts, &stream{kind: kindSilent})
	case event != "":
		st := &stream{kind: kindUser}
		if membership.ValidID(event) {
			st.user = event // no user has another id: nothing to send
		}
		return c.start(id, name, event, opts, st)
	}
	c.mu.Lock()
	list := c.subs[c.listID]
	c.mu.Unlock()
	if list != nil {
		// The list exists: edit it, and this subscription ends at once.
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if err := c.editList(list, opts.Added, opts.Removed); err != nil {
			return c.sendLocked(nosub(id, errInternal)) == nil
		}
		return c.sendLocked(nosub(id, nil)) == nil
	}
	return c.start(id, name, event, opts, &stream{kind: kindUserList, list: map[string]bool{}})
}

// start registers st and answers ready. The write lock is held from the
// first watch until ready is written: no change precedes ready.
func (c *conn) start(id, name, event string, opts streamOptions, st *stream) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	switch st.kind {
	case kindUser:
		if st.user != "" {
			err = c.watch(st.user)
		}
	case kindUserList:
		err = c.editList(st, opts.Added, opts.Removed)
	case kindUserStatus:
		c.mu.Lock()
		c.logged++
		first := c.logged == 1
		c.mu.Unlock()
		if first {
			err = c.subscriber().WatchAllUsers()
		}
	}
	if err != nil {
		c.h.log.Warn("ddp: subscription failed", zap.String("stream", name), zap.Error(err))
		c.stop(st)
		return c.sendLocked(nosub(id, errInternal)) == nil
	}
	c.mu.Lock()
	c.subs[id] = st
	if st.kind == kindUserList {
		c.listID = id
	}
	c.mu.Unlock()
	var msgs [][]byte
	if opts.UseCollection {
		msgs = append(msgs, document(msgAdded, name, "id", map[string]string{"eventName": event}))
	}
	return c.sendLocked(append(msgs, ready(id))...) == nil
}

// unsubscribe stops a subscription and answers nosub, for an unknown id
// too, as Meteor does.
func (c *conn) unsubscribe(m message) bool {
	id, ok := m.str("id")
	if !ok {
		return c.send(errorMsg(reasonBadRequest, m.raw)) == nil
	}
	c.touch()
	c.mu.Lock()
	st := c.subs[id]
	delete(c.subs, id)
	if id == c.listID {
		c.listID = ""
	}
	c.mu.Unlock()
	if st != nil {
		c.stop(st)
	}
	return c.send(nosub(id, nil)) == nil
}

// stop releases what a subscription watched.
func (c *conn) stop(st *stream) {
	switch st.kind {
	case kindUser:
		if st.user != "" {
			c.unwatch(st.user)
		}
	case kindUserList:
		for u := range st.list {
			c.unwatch(u)
		}
	case kindUserStatus:
		c.mu.Lock()
		c.logged--
		last := c.logged == 0
		c.mu.Unlock()
		if last {
			// UnwatchUsers(nil) also drops the users watched one by one:
			// watch them again.
			sub := c.subscriber()
			sub.UnwatchUsers(nil)
			if users := c.watchedUsers(); len(users) > 0 {
				if _, err := sub.WatchUsers(users); err != nil {
					c.h.log.Warn("ddp: watch users again", zap.Error(err))
				}
			}
		}
	}
}

// editList adds and removes users of the web client's list.
func (c *conn) editList(st *stream, added, removed []string) error {
	for _, u := range added {
		if membership.ValidID(u) && !st.list[u] {
			st.list[u] = true
			if err := c.watch(u); err != nil {
				return err
			}
		}
	}
	for _, u := range removed {
		if st.list[u] {
			delete(st.list, u)
			c.unwatch(u)
		}
	}
	return nil
}

// watch counts one more subscription watching user.
func (c *conn) watch(user string) error {
	c.mu.Lock()
	c.watched[user]++
	first := c.watched[user] == 1
	c.mu.Unlock()
	if !first {
		return nil
	}
	_, err := c.subscriber().WatchUsers([]string{user})
	return err
}

// unwatch counts one subscription less watching user.
func (c *conn) unwatch(user string) {
	c.mu.Lock()
	c.watched[user]--
	last := c.watched[user] <= 0
	if last {
		delete(c.watched, user)
	}
	c.mu.Unlock()
	if last {
		c.subscriber().UnwatchUsers([]string{user})
	}
}

func (c *conn) watchedUsers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.watched))
	for u := range c.watched {
		out = append(out, u)
	}
	return out
}

// ensureSubscriber makes the connection's subscriber on its first stream.
func (c *conn) ensureSubscriber() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sub != nil {
		return nil
	}
	if c.closing {
		return presence.ErrClosed
	}
	c.sub = c.h.cfg.Presence.NewSubscriber(presence.SubscriberConfig{
		Queue: c.h.cfg.WriteQueue,
		Ready: func() { c.h.schedule(c) },
	})
	return nil
}

func (c *conn) subscriber() *presence.Subscriber {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sub
}

// flush writes the changes queued for the connection. flushMu keeps them
// in order when two writers get the connection one after the other.
func (c *conn) flush() {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.queued.Store(false)
	sub := c.subscriber()
	if sub == nil {
		return
	}
	for {
		batches, err := sub.TryNext()
		switch {
		case errors.Is(err, presence.ErrSlowConsumer):
			c.close(protocol.CloseSlowConsumer)
			return
		case err != nil || len(batches) == 0:
			return
		}
		if msgs := c.changes(batches); len(msgs) > 0 {
			if err := c.send(msgs...); err != nil {
				c.close(protocol.CloseNormal)
				return
			}
		}
	}
}

// presenceFields are the fields of a stream-user-presence change.
type presenceFields struct {
	UID       string    `json:"uid"`
	Args      [1][3]any `json:"args"`
	EventName string    `json:"eventName"`
}

// statusFields are the fields of a stream-notify-logged user-status change.
type statusFields struct {
	EventName string    `json:"eventName"`
	Args      [1][6]any `json:"args"`
}

// changes encodes the changes of batches for the streams that want them,
// leaving out the users the caller may not see now.
func (c *conn) changes(batches []presence.Batch) [][]byte {
	viewer := c.userID()
	if viewer == "" {
		return nil
	}
	// Which stream wants each change, read under mu; the membership index
	// is read after, without mu (its change feed may close connections).
	type wanted struct {
		ch      presence.Change
		watched bool
	}
	var todo []wanted
	c.mu.Lock()
	logged := c.logged > 0
	for _, b := range batches {
		for _, ch := range b.Users {
			if w := c.watched[ch.User] > 0; w || logged {
				todo = append(todo, wanted{ch, w})
			}
		}
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	visible := c.h.cfg.Visibility.UserFilter(viewer)
	var msgs [][]byte
	for _, w := range todo {
		ch := w.ch
		if !visible(ch.User) {
			continue
		}
		u, ok := c.h.cfg.Users.User(ch.User)
		if !ok {
			continue
		}
		code := statusCode(ch.Status)
		if w.watched {
			msgs = append(msgs, document(msgChanged, streamUserPresence, u.ID, presenceFields{
				UID: u.ID, Args: [1][3]any{{u.Username, code, ch.Text}}, EventName: u.ID,
			}))
		}
		if logged {
			roles := u.Roles
			if roles == nil {
				roles = []string{}
			}
			msgs = append(msgs, document(msgChanged, streamNotifyLogged, "id", statusFields{
				EventName: eventUserStatus, Args: [1][6]any{{u.ID, u.Username, code, ch.Text, u.Name, roles}},
			}))
		}
	}
	return msgs
}

// Recheck tells the connections that may no longer see a user, or be seen
// by it, what such a user reads as: user lost a membership or the admin
// role, or was deleted. A connection logged in as user is told, for each
// user its streams watch that it may no longer see, that the user is
// offline; a connection watching user that may no longer see it is told
// the same of user. Without it a client would show the last status it got
// for good, since later changes are left out (see changes). It returns at
// once: one goroutine goes through the connections for all the users
// rechecked meanwhile (a group's deletion rechecks each of its members).
// A nil Handler tells no one.
func (h *Handler) Recheck(user membership.User) {
	if h == nil {
		return
	}
	h.recheckMu.Lock()
	defer h.recheckMu.Unlock()
	if h.rechecks == nil {
		h.rechecks = map[string]membership.User{}
	}
	h.rechecks[user.ID] = user
	if !h.rechecking {
		h.rechecking = true
		go h.recheckAll()
	}
}

func (h *Handler) recheckAll() {
	for {
		h.recheckMu.Lock()
		users := h.rechecks
		h.rechecks = nil
		if len(users) == 0 {
			h.rechecking = false
			h.recheckMu.Unlock()
			return
		}
		h.recheckMu.Unlock()
		for _, c := range h.all() {
			c.recheck(users)
		}
	}
}

// recheck tells c that the users it watches and may no longer see are
// offline, among those rechecked (all it watches when c's own user is).
func (c *conn) recheck(rechecked map[string]membership.User) {
	viewer := c.userID()
	if viewer == "" {
		return
	}
	var users []string
	c.mu.Lock()
	_, all := rechecked[viewer]
	for u := range c.watched {
		if _, ok := rechecked[u]; ok || all {
			users = append(users, u)
		}
	}
	c.mu.Unlock()
	if len(users) == 0 {
		return
	}
	visible := c.h.cfg.Visibility.UserFilter(viewer)
	var msgs [][]byte
	for _, id := range users {
		if visible(id) {
			continue
		}
		u, ok := rechecked[id]
		if !ok {
			if u, ok = c.h.cfg.Users.User(id); !ok {
				continue
			}
		}
		msgs = append(msgs, document(msgChanged, streamUserPresence, id, presenceFields{
			UID: id, Args: [1][3]any{{u.Username, statusCode(protocol.StatusOffline), ""}}, EventName: id,
		}))
	}
	if len(msgs) == 0 {
		return
	}
	// In order with the changes the writers send (flush).
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if c.send(msgs...) != nil {
		c.close(protocol.CloseNormal)
	}
}
