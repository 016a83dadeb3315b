package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// NATS subjects of the presence engine.
const (
	// SubjectPublish receives backend status events: JSON PublishRequest.
	// Every engine subscribes in queue group PublishQueue, so each event is
	// handled once; the reply is a PublishReply.
	SubjectPublish = "presenced.status.publish"
	PublishQueue   = "presenced"
	// SubjectChanges + <user> carries every status change of the user as
	// JSON Change, published by one node (see feed.go).
	SubjectChanges = "presenced.changes."
)

// MaxSourceTTL bounds a backend source's TTL.
const MaxSourceTTL = 24 * time.Hour

// Event is a backend status event: source (a service, a calendar, a phone
// system...) says user is status. A source counts as a session of the user
// until it publishes offline or, with a TTL, until the TTL passes without
// another event.
type Event struct {
	User   string
	Status protocol.Status
	Text   string
	Source string
	// TTL, if positive, expires the source unless it publishes again.
	TTL time.Duration
}

// PublishRequest is the JSON body of a message on SubjectPublish.
type PublishRequest struct {
	User   string          `json:"user"`
	Status protocol.Status `json:"status"`
	Text   string          `json:"text,omitempty"`
	Source string          `json:"source"`
	// TTL in seconds; 0 keeps the source until it publishes offline.
	TTL float64 `json:"ttl,omitempty"`
}

// PublishReply answers a PublishRequest: Rev on success, Error otherwise.
type PublishReply struct {
	OK    bool          `json:"ok,omitempty"`
	Rev   uint64        `json:"rev,omitempty"`
	Error *PublishError `json:"error,omitempty"`
}

// PublishError is the error of a PublishReply.
type PublishError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of a PublishReply.
const (
	CodeBadRequest  = "bad_request"
	CodeUnavailable = "unavailable"
)

// Publish stores a backend status event and returns its revision. Status
// offline removes the source.
func (e *Engine) Publish(ctx context.Context, ev Event) (uint64, error) {
	if err := e.running(); err != nil {
		return 0, err
	}
	if !membership.ValidID(ev.User) {
		return 0, invalid("user id %q", ev.User)
	}
	if !membership.ValidID(ev.Source) {
		return 0, invalid("source id %q", ev.Source)
	}
	if !ev.Status.Valid() {
		return 0, invalid("status %q", ev.Status)
	}
	if len(ev.Text) > protocol.MaxStatusText {
		return 0, invalid("status text longer than %d bytes", protocol.MaxStatusText)
	}
	if ev.TTL < 0 || ev.TTL > MaxSourceTTL {
		return 0, invalid("ttl out of 0..%s", MaxSourceTTL)
	}
	key := sourceKey(ev.User, ev.Source)
	if ev.Status == protocol.StatusOffline {
		rev, err := e.deleteKey(ctx, key, 0)
		if err != nil {
			return 0, fmt.Errorf("presence: publish: %w", err)
		}
		return rev, nil
	}
	rec := sessionRecord{User: ev.User, Session: ev.Source, Status: ev.Status, Text: ev.Text,
		Since: e.x.sourceSince(key, ev.User, ev.Status)}
	if ev.TTL > 0 {
		rec.Expires = e.clock.Now().Add(ev.TTL)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	rev, err := e.kv.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("presence: publish: %w", err)
	}
	return rev, nil
}

// sourceSince keeps a source's since while its status stays, else carries
// the user's over like a session does.
func (x *index) sourceSince(key, user string, status protocol.Status) time.Time {
	x.mu.RLock()
	s := x.sessions[key]
	if s != nil && s.rec.Status == status {
		t := s.since()
		x.mu.RUnlock()
		return t
	}
	x.mu.RUnlock()
	return x.inheritSince(user, status)
}

func (e *Engine) subscribeBackend() error {
	sub, err := e.cfg.Conn.QueueSubscribe(SubjectPublish, PublishQueue, e.handlePublish)
	if err != nil {
		return fmt.Errorf("presence: subscribe %s: %w", SubjectPublish, err)
	}
	e.lifeMu.Lock()
	e.backend = sub
	e.lifeMu.Unlock()
	return nil
}

func (e *Engine) stopBackend() {
	e.lifeMu.Lock()
	sub := e.backend
	e.backend = nil
	e.lifeMu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// handlePublish serves SubjectPublish.
func (e *Engine) handlePublish(m *nats.Msg) {
	var req PublishRequest
	var reply PublishReply
	if err := json.Unmarshal(m.Data, &req); err != nil {
		reply.Error = &PublishError{Code: CodeBadRequest, Message: "body is not a JSON publish request"}
	} else if req.TTL < 0 || req.TTL > MaxSourceTTL.Seconds() {
		reply.Error = &PublishError{Code: CodeBadRequest, Message: fmt.Sprintf("ttl out of 0..%g seconds", MaxSourceTTL.Seconds())}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rev, err := e.Publish(ctx, Event{User: req.User, Status: req.Status, Text: req.Text, Source: req.Source,
			TTL: time.Duration(req.TTL * float64(time.Second))})
		cancel()
		switch {
		case err == nil:
			reply.OK, reply.Rev = true, rev
		case errors.Is(err, ErrInvalid):
			reply.Error = &PublishError{Code: CodeBadRequest, Message: err.Error()}
		default:
			e.log.Warn("presence: backend publish failed", zap.Error(err))
			reply.Error = &PublishError{Code: CodeUnavailable, Message: "presence store unavailable"}
		}
	}
	if m.Reply == "" {
		return
	}
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
}
