package jskv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errDuplicateConflict is nats-server's JSStreamDuplicateMessageConflictErr:
// a message with this Nats-Msg-Id is being stored and is not yet, as when
// a message is sent again while the first one is still being replicated.
const errDuplicateConflict = 10158

// Publisher returns a JetStream on js's connection and API prefix whose
// asynchronous publishes stop waiting for an answer after AttemptTimeout.
// PublishAll's messages go through it: one whose answer never comes (its
// stream's leader was lost) must not stay among the connection's pending
// publishes for good, as it does without that timeout, since their number
// is bounded and PublishAll sends such a message again.
func Publisher(js jetstream.JetStream) (jetstream.JetStream, error) {
	o := js.Options()
	opt := jetstream.WithPublishAsyncTimeout(AttemptTimeout)
	switch {
	case o.APIPrefix != "":
		return jetstream.NewWithAPIPrefix(js.Conn(), o.APIPrefix, opt)
	case o.Domain != "":
		return jetstream.NewWithDomain(js.Conn(), o.Domain, opt)
	}
	return jetstream.New(js.Conn(), opt)
}

// PublishAll publishes msgs, each without waiting for the one before, and
// waits for every acknowledgement. A message that gets no answer within
// AttemptTimeout, or a Transient error (its stream's leader was lost, an
// election), is sent again after a growing pause until ctx ends: a write
// sent while a stream has no leader gets no answer at all. Every message
// must carry a Nats-Msg-Id header, unique to it: the stream acknowledges a
// message it stored already, within its duplicate window, instead of
// storing it again, so a message whose acknowledgement was lost with the
// leader is not stored twice, nor refused by its own compare-and-set.
//
// It returns, per message, the acknowledgement or the stream's refusal
// (a compare-and-set that lost, say), and an error when ctx ended first.
// js should come from Publisher.
func PublishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) ([]*jetstream.PubAck, []error, error) {
	acks := make([]*jetstream.PubAck, len(msgs))
	errs := make([]error, len(msgs))
	todo := make([]int, len(msgs))
	for i := range todo {
		todo[i] = i
	}
	pause := 50 * time.Millisecond
	for len(todo) > 0 {
		futures := make([]jetstream.PubAckFuture, len(todo))
		for k, i := range todo {
			m := msgs[i]
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: maps.Clone(m.Header), Data: m.Data})
			switch {
			case err == nil:
				futures[k] = f
			case !unanswered(err):
				errs[i] = err
			}
		}
		expiry := time.NewTimer(AttemptTimeout)
		expired := false
		var again []int
		for k, i := range todo {
			f := futures[k]
			if f == nil {
				if errs[i] == nil {
					again = append(again, i)
				}
				continue
			}
			if expired {
				select {
				case a := <-f.Ok():
					acks[i] = a
				case err := <-f.Err():
					again = settle(errs, again, i, err)
				default:
					again = append(again, i)
				}
				continue
			}
			select {
			case a := <-f.Ok():
				acks[i] = a
			case err := <-f.Err():
				again = settle(errs, again, i, err)
			case <-expiry.C:
				expired = true
				again = append(again, i)
			case <-ctx.Done():
				expiry.Stop()
				return acks, errs, ctx.Err()
			}
		}
		expiry.Stop()
		todo = again
		if len(todo) == 0 {
			break
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return acks, errs, ctx.Err()
		}
		pause = min(2*pause, time.Second)
	}
	for i, err := range errs {
		if WrongSequence(err) {
			if a := storedAlready(ctx, js, msgs[i]); a != nil {
				acks[i], errs[i] = a, nil
			}
		}
	}
	return acks, errs, nil
}

// storedAlready returns the acknowledgement a key write m should have got
// when its compare-and-set was refused although m itself was stored: the
// key's last entry, as the stream's leader has it, carries m's
// Nats-Msg-Id. It happens after a leader's loss: a copy of m that reached
// the new leader while m was still in process there is refused ("wrong
// last sequence", 10164), and the refusal may be the answer that reaches
// the sender. Nil when m is not a key write, or not stored.
func storedAlready(ctx context.Context, js jetstream.JetStream, m *nats.Msg) *jetstream.PubAck {
	id := m.Header.Get(jetstream.MsgIDHeader)
	rest, ok := strings.CutPrefix(m.Subject, "$KV.")
	bucket, _, ok2 := strings.Cut(rest, ".")
	if id == "" || !ok || !ok2 {
		return nil
	}
	e, err := Retry(ctx, func(ctx context.Context) (*entry, error) {
		return leaderGet(ctx, js, "KV_"+bucket, bucket, msgGetRequest{LastFor: m.Subject})
	})
	if err != nil || e.msgID != id {
		return nil
	}
	return &jetstream.PubAck{Stream: "KV_" + bucket, Sequence: e.revision}
}

// settle records err as message i's answer, or queues i to be sent again
// when err says the stream could not answer yet.
func settle(errs []error, again []int, i int, err error) []int {
	if unanswered(err) {
		return append(again, i)
	}
	errs[i] = err
	return again
}

// unanswered reports whether err says a message got no answer from its
// stream yet: sending it again may get one.
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	return Transient(err) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == errDuplicateConflict
}

// Send publishes m through PublishAll, with a Nats-Msg-Id of its own
// unless it has one, and
// returns its acknowledgement or the stream's refusal. Without a deadline
// in ctx it tries for ContendFor.
func Send(ctx context.Context, js jetstream.JetStream, m *nats.Msg) (*jetstream.PubAck, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ContendFor)
		defer cancel()
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	if m.Header.Get(jetstream.MsgIDHeader) == "" {
		m.Header.Set(jetstream.MsgIDHeader, NewMsgID())
	}
	acks, errs, err := PublishAll(ctx, js, []*nats.Msg{m})
	if err != nil {
		return nil, fmt.Errorf("jskv: waiting for the stream: %w", err)
	}
	return acks[0], errs[0]
}

// Write stores value under key in kv through Send, with a compare-and-set
// on expect unless it is nil: 0 is a key that holds no value, a deletion
// marker included, as kv.Create has it. It returns the new revision;
// jetstream.ErrKeyExists when expect is 0 and the key holds a value; an
// error that WrongSequence reports when the key is not at expect.
func Write(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string, value []byte, expect *uint64) (uint64, error) {
	var want *uint64
	if expect != nil {
		want = new(uint64)
		*want = *expect
	}
	for tries := 1; ; tries++ {
		ack, err := Send(ctx, js, KeyWrite(kv.Bucket(), key, value, want))
		if err == nil {
			return ack.Sequence, nil
		}
		if expect == nil || *expect != 0 || !WrongSequence(err) {
			return 0, err
		}
		// A creation: the key holds a value, or only the marker of its
		// deletion, which a creation is written over.
		rev, live, lerr := LastRevisionRetried(ctx, js, kv, key)
		switch {
		case lerr != nil:
			return 0, lerr
		case live || tries == 3:
			return 0, jetstream.ErrKeyExists
		}
		*want = rev
	}
}

// KeyWrite is the message that stores value under key in bucket, with a
// compare-and-set on expect unless it is nil, and a Nats-Msg-Id of its own
// (see PublishAll).
func KeyWrite(bucket, key string, value []byte, expect *uint64) *nats.Msg {
	m := nats.NewMsg("$KV." + bucket + "." + key)
	m.Data = value
	m.Header.Set(jetstream.MsgIDHeader, NewMsgID())
	if expect != nil {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*expect, 10))
	}
	return m
}

// LastRevisionRetried is LastRevision asked again while the stream does
// not answer (see Retry), within ctx.
func LastRevisionRetried(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string) (rev uint64, live bool, err error) {
	type last struct {
		rev  uint64
		live bool
	}
	l, err := Retry(ctx, func(ctx context.Context) (last, error) {
		rev, live, err := LastRevision(ctx, js, kv, key)
		return last{rev, live}, err
	})
	return l.rev, l.live, err
}

// GetFromLeaderRetried is GetFromLeader asked again while the stream does
// not answer (see Retry), within ctx: a read that a write rests on waits
// out an election instead of ctx.
func GetFromLeaderRetried(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	return Retry(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
		return GetFromLeader(ctx, js, kv, key)
	})
}

// NewMsgID returns a random Nats-Msg-Id.
func NewMsgID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
