package presence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// NATS subjects of the presence engine.
const (
	// SubjectPublish receives backend status events: a JSON
	// PublishRequest, answered by a PublishReply, or a JSON array of up to
	// MaxBatch of them, answered by an array of replies in the same order.
	// Every engine subscribes in queue group PublishQueue, so each message
	// is handled once.
	SubjectPublish = "presenced.status.publish"
	PublishQueue   = "presenced"
	// SubjectChanges + <user> carries the status changes of the user as
	// JSON Change, published by one node as its watch reads them (see
	// feed.go and the package doc).
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
	m, err := e.eventMsg(ev)
	if err != nil {
		return 0, err
	}
	ack, err := e.cfg.JetStream.PublishMsg(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("presence: publish: %w", err)
	}
	e.counts.statusEvents.Add(1)
	e.avail.wrote(e.clock.Now())
	return ack.Sequence, nil
}

// MaxBatch bounds the events of one PublishBatch.
const MaxBatch = 1000

// PublishResult is the outcome of one event of a batch: its revision, or
// why it was not stored.
type PublishResult struct {
	Rev uint64
	Err error
}

// PublishBatch stores events like Publish, in order, and returns one result
// per event. The writes are pipelined: all are sent before the first
// acknowledgement is awaited, so a batch costs about one round trip to
// JetStream instead of one per event. An invalid event fails alone.
func (e *Engine) PublishBatch(ctx context.Context, evs []Event) ([]PublishResult, error) {
	if err := e.running(); err != nil {
		return nil, err
	}
	if len(evs) > MaxBatch {
		return nil, invalid("more than %d events in a batch", MaxBatch)
	}
	out := make([]PublishResult, len(evs))
	acks := make([]jetstream.PubAckFuture, len(evs))
	for i, ev := range evs {
		m, err := e.eventMsg(ev)
		if err != nil {
			out[i].Err = err
			continue
		}
		// The stall wait bounds how long a full pipeline holds the caller
		// before the event fails as unavailable.
		if acks[i], err = e.cfg.JetStream.PublishMsgAsync(m, jetstream.WithStallWait(2*time.Second)); err != nil {
			out[i].Err = fmt.Errorf("presence: publish: %w", err)
		}
	}
	for i, f := range acks {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			out[i].Rev = ack.Sequence
			e.counts.statusEvents.Add(1)
			e.avail.wrote(e.clock.Now())
		case err := <-f.Err():
			out[i].Err = fmt.Errorf("presence: publish: %w", err)
		case <-ctx.Done():
			out[i].Err = fmt.Errorf("presence: publish: %w", ctx.Err())
		}
	}
	return out, nil
}

// eventMsg validates a backend event and returns the message that stores
// it in the presence bucket: the source's record, or a delete marker for
// offline.
func (e *Engine) eventMsg(ev Event) (*nats.Msg, error) {
	if !membership.ValidID(ev.User) {
		return nil, invalid("user id %q", ev.User)
	}
	if !membership.ValidID(ev.Source) {
		return nil, invalid("source id %q", ev.Source)
	}
	if !ev.Status.Valid() {
		return nil, invalid("status %q", ev.Status)
	}
	if len(ev.Text) > protocol.MaxStatusText {
		return nil, invalid("status text longer than %d bytes", protocol.MaxStatusText)
	}
	if ev.TTL < 0 || ev.TTL > MaxSourceTTL {
		return nil, invalid("ttl out of 0..%s", MaxSourceTTL)
	}
	key := sourceKey(ev.User, ev.Source)
	m := nats.NewMsg(subjectOf(e.cfg.Bucket, key))
	if ev.Status == protocol.StatusOffline {
		m.Header.Set("KV-Operation", "DEL")
		return m, nil
	}
	rec := sessionRecord{User: ev.User, Session: ev.Source, Status: ev.Status, Text: ev.Text,
		Since: e.x.sourceSince(key, ev.User, ev.Status)}
	if ev.TTL > 0 {
		rec.Expires = e.clock.Now().Add(ev.TTL)
	}
	m.Data = rec.appendJSON(make([]byte, 0, 192))
	return m, nil
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
	// Once the engine is ready, a request must find the subscription.
	if err := e.cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		_ = sub.Unsubscribe()
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

// handlePublish serves SubjectPublish: a PublishRequest gets a
// PublishReply; a JSON array of up to MaxBatch of them gets an array of
// replies in the same order (a body that is no such array: one error
// reply).
func (e *Engine) handlePublish(m *nats.Msg) {
	var reply any
	if body := bytes.TrimLeft(m.Data, " \t\r\n"); len(body) > 0 && body[0] == '[' {
		reply = e.publishBatchReply(body)
	} else {
		reply = e.publishReply(m.Data)
	}
	if m.Reply == "" {
		return
	}
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
}

func (e *Engine) publishReply(body []byte) PublishReply {
	var req PublishRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return badPublish("body is not a JSON publish request")
	}
	ev, bad := req.event()
	if bad != nil {
		return *bad
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rev, err := e.Publish(ctx, ev)
	return e.replyOf(rev, err)
}

func (e *Engine) publishBatchReply(body []byte) any {
	var reqs []PublishRequest
	if err := json.Unmarshal(body, &reqs); err != nil {
		return badPublish("body is not a JSON array of publish requests")
	}
	if len(reqs) > MaxBatch {
		return badPublish(fmt.Sprintf("more than %d events in a batch", MaxBatch))
	}
	replies := make([]PublishReply, len(reqs))
	evs := make([]Event, 0, len(reqs))
	at := make([]int, 0, len(reqs)) // index in reqs of each event
	for i, req := range reqs {
		ev, bad := req.event()
		if bad != nil {
			replies[i] = *bad
			continue
		}
		evs = append(evs, ev)
		at = append(at, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := e.PublishBatch(ctx, evs)
	for j, i := range at {
		if err != nil {
			replies[i] = e.replyOf(0, err)
		} else {
			replies[i] = e.replyOf(res[j].Rev, res[j].Err)
		}
	}
	return replies
}

// event checks what only the wire form can get wrong.
func (req PublishRequest) event() (Event, *PublishReply) {
	if req.TTL < 0 || req.TTL > MaxSourceTTL.Seconds() {
		r := badPublish(fmt.Sprintf("ttl out of 0..%g seconds", MaxSourceTTL.Seconds()))
		return Event{}, &r
	}
	return Event{User: req.User, Status: req.Status, Text: req.Text, Source: req.Source,
		TTL: time.Duration(req.TTL * float64(time.Second))}, nil
}

func badPublish(msg string) PublishReply {
	return PublishReply{Error: &PublishError{Code: CodeBadRequest, Message: msg}}
}

func (e *Engine) replyOf(rev uint64, err error) PublishReply {
	switch {
	case err == nil:
		return PublishReply{OK: true, Rev: rev}
	case errors.Is(err, ErrInvalid):
		return badPublish(err.Error())
	default:
		e.log.Warn("presence: backend publish failed", zap.Error(err))
		return PublishReply{Error: &PublishError{Code: CodeUnavailable, Message: "presence store unavailable"}}
	}
}
