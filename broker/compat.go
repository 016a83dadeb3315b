package broker

import (
	"context"
	"net/http"
	"time"

	"github.com/presenced/presenced/broker/compat/bitrix24"
	"github.com/presenced/presenced/broker/compat/cometchat"
	"github.com/presenced/presenced/broker/compat/rocketchat"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

// compatStatus adapts the presence engine to the vendor packages' status
// interfaces.
type compatStatus struct{ e *presence.Engine }

func (c compatStatus) UserStatus(user string) (protocol.Status, string, time.Time) {
	us := c.e.Status(user)
	return us.Status, us.Text, us.Changed
}

func (c compatStatus) ChangedSince(t time.Time) []string {
	changed := c.e.ChangedSince(t)
	ids := make([]string, len(changed))
	for i, us := range changed {
		ids[i] = us.User
	}
	return ids
}

// SetManualStatus stores a manual status; "online" clears it, and an empty
// status keeps the current one while the text changes.
func (c compatStatus) SetManualStatus(ctx context.Context, user string, status protocol.Status, text string) error {
	m := presence.Manual{Status: status, Text: text}
	if status == "" {
		if cur, ok := c.e.ManualOf(user); ok {
			m.Status, m.Expires = cur.Status, cur.Expires
		}
	}
	return c.e.SetManual(ctx, user, m)
}

// compatHandlers builds the Rocket.Chat, CometChat and Bitrix24 endpoints,
// mounted under /api/v1/, /v3/ and /rest/.
func (s *Server) compatHandlers() (rc, cc, bx http.Handler, err error) {
	st := compatStatus{s.engine}
	ix := s.store.Index()
	auth := compatAuth{s.auth, s.metrics.authFailures.WithLabelValues("vendor")}
	if rc, err = rocketchat.New(rocketchat.Config{
		Directory: ix, Presence: st, StatusWriter: st, Auth: auth, Visibility: s.authority, Logger: s.log.Named("rocketchat"),
	}); err != nil {
		return nil, nil, nil, err
	}
	if cc, err = cometchat.New(cometchat.Config{Directory: ix, Presence: st, Auth: auth, Visibility: s.authority,
		Logger: s.log.Named("cometchat")}); err != nil {
		return nil, nil, nil, err
	}
	if bx, err = bitrix24.New(bitrix24.Config{Directory: ix, Auth: auth, Visibility: s.authority, Logger: s.log.Named("bitrix24")}); err != nil {
		return nil, nil, nil, err
	}
	return s.available(rc, rocketchat.WriteUnavailable), s.available(cc, cometchat.WriteUnavailable),
		s.available(bx, bitrix24.WriteUnavailable), nil
}

// available answers with unavailable (the vendor's shape) while this node
// cannot serve presence, and with h otherwise.
func (s *Server) available(h http.Handler, unavailable func(http.ResponseWriter, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.unavailable(); err != nil {
			unavailable(w, err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}
