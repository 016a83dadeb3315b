package presence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/membership"
)

// streamName is the JetStream stream behind a KV bucket.
func streamName(bucket string) string { return "KV_" + bucket }

// subjectOf is the stream subject of a key.
func subjectOf(bucket, key string) string { return "$KV." + bucket + "." + key }

// ensureBucket creates or updates the presence bucket with the membership
// bucket's member keys sourced into it. It is idempotent: every node calls
// it at start.
func (e *Engine) ensureBucket(ctx context.Context) (jetstream.KeyValue, jetstream.Stream, error) {
	mb, pb := e.cfg.MembershipBucket, e.cfg.Bucket
	kv, err := membership.CreateBucket(ctx, e.cfg.JetStream, jetstream.KeyValueConfig{
		Bucket:      pb,
		Description: "presenced presence: sessions, sources, manual statuses, node leases; members sourced from " + mb,
		History:     1,
		Storage:     e.cfg.Storage,
		Replicas:    e.cfg.Replicas,
		// With subject transforms given, the source is used as is: only
		// member keys, renamed into this bucket.
		Sources: []*jetstream.StreamSource{{
			Name: streamName(mb),
			SubjectTransforms: []jetstream.SubjectTransformConfig{{
				Source:      subjectOf(mb, membership.MemberKeyFilter),
				Destination: subjectOf(pb, membership.MemberKeyFilter),
			}},
		}},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("presence: bucket %s: %w", pb, err)
	}
	st, err := e.cfg.JetStream.Stream(ctx, streamName(pb))
	if err != nil {
		return nil, nil, fmt.Errorf("presence: bucket %s: %w", pb, err)
	}
	return kv, st, nil
}

// sourcedUpTo waits until every member change stored in the membership
// bucket so far has been sourced into the presence bucket, and returns the
// presence stream's revision of the last one (0 if there is none). It polls,
// bounded by ctx.
func (e *Engine) sourcedUpTo(ctx context.Context, presence jetstream.Stream) (uint64, error) {
	mb, pb := e.cfg.MembershipBucket, e.cfg.Bucket
	ms, err := e.cfg.JetStream.Stream(ctx, streamName(mb))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		e.log.Warn("presence: membership bucket does not exist yet; starting without members")
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("presence: membership bucket %s: %w", mb, err)
	}
	last, err := ms.GetLastMsgForSubject(ctx, subjectOf(mb, membership.MemberKeyFilter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("presence: membership bucket %s: %w", mb, err)
	}
	for {
		m, err := presence.GetLastMsgForSubject(ctx, subjectOf(pb, membership.MemberKeyFilter))
		switch {
		case err == nil:
			if seq, ok := sourceSeq(m.Header); ok && seq >= last.Sequence {
				return m.Sequence, nil
			}
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return 0, fmt.Errorf("presence: bucket %s: %w", pb, err)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("presence: membership not sourced: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// sourceSeq reads the source stream's sequence from a sourced message's
// Nats-Stream-Source header ("<stream> <seq> ...").
func sourceSeq(h nats.Header) (uint64, bool) {
	f := strings.Fields(h.Get("Nats-Stream-Source"))
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	return n, err == nil
}

// isWrongSeq reports a failed compare-and-set.
func isWrongSeq(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// deleteKey places a delete marker on key and returns its revision. With
// lastRev > 0 it only does so if key is still at that revision.
func (e *Engine) deleteKey(ctx context.Context, key string, lastRev uint64) (uint64, error) {
	m := nats.NewMsg(subjectOf(e.cfg.Bucket, key))
	m.Header.Set("KV-Operation", "DEL")
	if lastRev > 0 {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(lastRev, 10))
	}
	ack, err := e.cfg.JetStream.PublishMsg(ctx, m)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}
