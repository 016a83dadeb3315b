package broker

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
	"go.uber.org/zap"
)

// statusBody is a backend status event, as POST /v1/presence/status and the
// NATS subject take it.
type statusBody struct {
	User   string          `json:"user"`
	Status protocol.Status `json:"status"`
	Text   string          `json:"text"`
	Source string          `json:"source"`
	TTL    float64         `json:"ttl"` // seconds; 0: until offline is published
}

func (b statusBody) event() presence.Event {
	return presence.Event{User: b.User, Status: b.Status, Text: b.Text, Source: b.Source,
		TTL: time.Duration(b.TTL * float64(time.Second))}
}

func (s *Server) publishStatus(w http.ResponseWriter, r *http.Request) error {
	var b statusBody
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	// The authority first: a caller that may not state this user's status
	// learns nothing of the user, not even whether it exists.
	if by := principalFrom(r.Context()); !s.authority.CanPublishFor(by, b.User) {
		return &apiError{http.StatusForbidden, codeForbidden, forbiddenPublish(by)}
	}
	if _, ok := s.store.Index().User(b.User); !ok {
		return &apiError{http.StatusNotFound, codeNotFound, "user " + b.User + " not found"}
	}
	rev, err := s.engine.Publish(r.Context(), b.event())
	if err != nil {
		return presenceError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "rev": rev})
	return nil
}

func forbiddenPublish(by Principal) string {
	return "a token bound to user " + by.UserID + " states only that user's status"
}

// batchResult is one event's outcome in a batch: ok and rev, or error.
type batchResult struct {
	OK    bool              `json:"ok,omitempty"`
	Rev   uint64            `json:"rev,omitempty"`
	Error map[string]string `json:"error,omitempty"`
}

// publishStatusBatch stores up to presence.MaxBatch backend events of one
// request, pipelined, and answers each in order. An event that fails fails
// alone; the request fails as a whole only when its body is not a batch.
func (s *Server) publishStatusBatch(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		Events []statusBody `json:"events"`
	}
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	if b.Events == nil {
		return badRequest("events: required")
	}
	if len(b.Events) > presence.MaxBatch {
		return badRequest("events: more than %d in one batch", presence.MaxBatch)
	}
	results := make([]batchResult, len(b.Events))
	evs := make([]presence.Event, 0, len(b.Events))
	at := make([]int, 0, len(b.Events))
	idx := s.store.Index()
	by := principalFrom(r.Context())
	for i, e := range b.Events {
		if !s.authority.CanPublishFor(by, e.User) { // first, as in publishStatus
			results[i].Error = map[string]string{"code": codeForbidden, "message": forbiddenPublish(by)}
			continue
		}
		if _, ok := idx.User(e.User); !ok {
			results[i].Error = map[string]string{"code": codeNotFound, "message": "user " + e.User + " not found"}
			continue
		}
		evs = append(evs, e.event())
		at = append(at, i)
	}
	res, err := s.engine.PublishBatch(r.Context(), evs)
	if err != nil {
		return presenceError(err)
	}
	for j, i := range at {
		switch err := res[j].Err; {
		case err == nil:
			results[i] = batchResult{OK: true, Rev: res[j].Rev}
		case errors.Is(err, presence.ErrInvalid):
			results[i].Error = map[string]string{"code": codeBadRequest, "message": strings.TrimPrefix(err.Error(), "presence: ")}
		default:
			s.log.Warn("batch publish failed", zap.Error(err))
			results[i].Error = map[string]string{"code": codeUnavailable, "message": "presence store unavailable, retry"}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
}

// presenceError maps the engine's validation errors to 400.
func presenceError(err error) error {
	if errors.Is(err, presence.ErrInvalid) {
		return badRequest("%s", strings.TrimPrefix(err.Error(), "presence: "))
	}
	return err
}

// userView is one user's presence in the native API.
type userView struct {
	User     string          `json:"user"`
	Status   protocol.Status `json:"status"`
	Text     string          `json:"text,omitempty"`
	Since    *time.Time      `json:"since,omitempty"`
	LastSeen *time.Time      `json:"lastSeen,omitempty"`
	Changed  *time.Time      `json:"changed,omitempty"`
	Rev      uint64          `json:"rev"`
}

func viewStatus(us presence.UserStatus) userView {
	t := func(x time.Time) *time.Time {
		if x.IsZero() {
			return nil
		}
		return &x
	}
	return userView{User: us.User, Status: us.Status, Text: us.Text, Since: t(us.Since),
		LastSeen: t(us.LastSeen), Changed: t(us.Changed), Rev: us.Rev}
}

// presenceOfUsers answers the status of many users: ?ids=a,b or ?ids=a&ids=b.
func (s *Server) presenceOfUsers(w http.ResponseWriter, r *http.Request) error {
	var ids []string
	for _, v := range r.URL.Query()["ids"] {
		ids = append(ids, splitList(v)...)
	}
	if len(ids) == 0 || len(ids) > protocol.MaxQueryUsers {
		return badRequest("ids must name 1 to %d users", protocol.MaxQueryUsers)
	}
	visible := s.authority.UserFilter(viewerOf(r))
	out := make([]userView, 0, len(ids))
	for _, us := range s.engine.Statuses(ids) {
		if !visible(us.User) {
			us = presence.UserStatus{User: us.User, Status: protocol.StatusOffline} // as a user never seen
		}
		out = append(out, viewStatus(us))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "rev": s.engine.Rev()})
	return nil
}

// viewerOf is whose presence rules a request reads under: the user its
// credential is bound to, "" for a token bound to no user (see
// membership.Authority).
func viewerOf(r *http.Request) string { return principalFrom(r.Context()).UserID }

// seeUser answers not found for a user that does not exist or that the
// caller may not see: the two read alike.
func (s *Server) seeUser(r *http.Request, id string) error {
	if _, ok := s.store.Index().User(id); !ok || !s.authority.CanSeeUser(viewerOf(r), id) {
		return &apiError{http.StatusNotFound, codeNotFound, "user " + id + " not found"}
	}
	return nil
}

// watchGroup answers not found for a group that does not exist or that
// the caller may not watch: the two read alike.
func (s *Server) watchGroup(r *http.Request, id string) error {
	if _, ok := s.store.Index().Group(id); !ok || !s.authority.CanWatchGroup(viewerOf(r), id) {
		return &apiError{http.StatusNotFound, codeNotFound, "group " + id + " not found"}
	}
	return nil
}

func (s *Server) presenceOfUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.seeUser(r, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewStatus(s.engine.Status(id)))
	return nil
}

// whereNow lists the groups in which a user is present, of those the
// caller may watch.
func (s *Server) whereNow(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.seeUser(r, id); err != nil {
		return err
	}
	viewer := viewerOf(r)
	groups := []string{}
	for _, g := range s.engine.WhereNow(id) {
		if s.authority.CanWatchGroup(viewer, g) {
			groups = append(groups, g)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": id, "groups": groups})
	return nil
}

func (s *Server) groupSnapshot(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.watchGroup(r, id); err != nil {
		return err
	}
	snap := s.engine.Snapshot(id)
	buf := s.appendSnapshot(s.frameBufs.get(snapshotSize(id, snap)), 0, id, snap)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf)
	s.frameBufs.put(buf)
	return nil
}

func (s *Server) groupCounts(w http.ResponseWriter, r *http.Request) error {
	viewer := viewerOf(r)
	out := []protocol.GroupCount{}
	for _, c := range s.engine.Counts() {
		if s.authority.CanWatchGroup(viewer, c.Group) {
			out = append(out, protocol.GroupCount{Group: c.Group, Online: c.Online, Total: c.Total, Rev: c.Rev})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out, "rev": s.engine.Rev()})
	return nil
}

// changedSince lists users whose status changed at or after ?since=
// (RFC 3339), offline included.
func (s *Server) changedSince(w http.ResponseWriter, r *http.Request) error {
	since, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("since"))
	if err != nil {
		return badRequest("since must be an RFC 3339 time")
	}
	visible := s.authority.UserFilter(viewerOf(r))
	var out []userView
	for _, us := range s.engine.ChangedSince(since) {
		if visible(us.User) {
			out = append(out, viewStatus(us))
		}
	}
	if out == nil {
		out = []userView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "rev": s.engine.Rev()})
	return nil
}

// stats answers the node's live totals, for dashboards.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) error {
	if err := s.wholeServer(r, "totals", ""); err != nil {
		return err
	}
	st := s.engine.Stats()
	users, groups, _ := s.store.Index().Counts()
	writeJSON(w, http.StatusOK, map[string]any{
		"connections": s.conns.len(),
		"sessions":    st.Sessions,
		"subscribers": st.Subscribers,
		"users":       users,
		"groups":      groups,
		"rev":         st.Rev,
	})
	return nil
}

// wholeServer refuses the whole server's figures (what: "totals",
// "history") to a token that does not see everyone: they count users it
// may not see. hint, if any, says what it may ask for instead.
func (s *Server) wholeServer(r *http.Request, what, hint string) error {
	if s.authority.SeesEveryone(viewerOf(r)) {
		return nil
	}
	msg := "only admins and tokens bound to no user read the whole server's " + what
	if hint != "" {
		msg += "; " + hint
	}
	return &apiError{http.StatusForbidden, codeForbidden, msg}
}
