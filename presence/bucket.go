package presence

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/internal/jskv"
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
	kv, err := jskv.CreateBucket(ctx, e.cfg.JetStream, jetstream.KeyValueConfig{
		Bucket:      pb,
		Description: "presenced presence: sessions, sources, manual statuses, node leases; members sourced from " + mb,
		History:     1,
		Storage:     e.cfg.Storage,
		Replicas:    e.cfg.Replicas,
		// With subject transforms given, the source is used as is: only
		// member keys, renamed into this bucket.
		//
		// OptStartSeq 1: a source that has not delivered anything yet
		// starts at the membership stream's first message. Without it,
		// nats-server starts such a source at the time of the presence
		// stream's last message once that stream's first sequence is past
		// 1, which lease refreshes make happen within seconds: a first
		// try to set the source up that fails (a cluster forming) would
		// then skip every membership change made before the retry.
		Sources: []*jetstream.StreamSource{{
			Name:        streamName(mb),
			OptStartSeq: 1,
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
