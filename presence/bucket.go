package presence

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/membership"
)

// streamName is the JetStream stream behind a KV bucket.
func streamName(bucket string) string { return "KV_" + bucket }

// subjectOf is the stream subject of a key.
func subjectOf(bucket, key string) string { return "$KV." + bucket + "." + key }

// keptValues is how many values of each key the presence bucket keeps.
//
// A watch reads what the stream holds when its consumer gets there: a
// value replaced before that is gone, and a node whose watch fell behind
// (a server that serves its consumer late under load, a connection that
// dropped and came back, a stalled watch resumed or filled from the
// stream's leader) never applies it. Every status is a pure function of
// the latest values, but a user's rev, changed and last seen are tracked
// entry by entry: a node that skipped a value passed through other states
// than the others and dated the user's changes otherwise. With the values
// before the last kept, a watch that fell behind skips nothing unless one
// key was written keptValues times meanwhile: more than twice a second for
// the few seconds the follower lets a watch stall. A node that starts late
// still loads only the last value of each key. The older values cost the
// stream at most keptValues-1 records per key written again (a lease, a
// source published again), those of a deleted key until its marker is
// purged.
const keptValues = 8

// ensureBucket creates or updates the presence bucket with the membership
// bucket's member keys sourced into it. It is idempotent: every node calls
// it at start. A bucket of the other storage type (memory before, file now,
// or the reverse) cannot be updated in place: it is deleted and created
// again, which starts a new epoch.
func (e *Engine) ensureBucket(ctx context.Context) (jetstream.KeyValue, error) {
	mb, pb := e.cfg.MembershipBucket, e.cfg.Bucket
	cfg := jetstream.KeyValueConfig{
		Bucket:      pb,
		Description: "presenced presence: sessions, sources, manual statuses, node leases; members sourced from " + mb,
		History:     keptValues,
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
	}
	kv, err := jskv.CreateBucket(ctx, e.cfg.JetStream, cfg)
	if err != nil && e.otherStorage(ctx) {
		e.log.Warn("presence: the presence bucket has another storage type; creating it again (a new epoch begins)",
			zap.String("storage", e.cfg.Storage.String()))
		if derr := e.cfg.JetStream.DeleteKeyValue(ctx, pb); derr != nil {
			return nil, fmt.Errorf("presence: bucket %s: %w (deleting it to change its storage: %v)", pb, err, derr)
		}
		kv, err = jskv.CreateBucket(ctx, e.cfg.JetStream, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("presence: bucket %s: %w", pb, err)
	}
	return kv, nil
}

// otherStorage reports whether the presence stream exists with another
// storage type than the configured one.
func (e *Engine) otherStorage(ctx context.Context) bool {
	st, err := jskv.Stream(ctx, e.cfg.JetStream, streamName(e.cfg.Bucket))
	return err == nil && st.CachedInfo().Config.Storage != e.cfg.Storage
}

// isWrongSeq reports a failed compare-and-set.
func isWrongSeq(err error) bool { return jskv.WrongSequence(err) }

// deleteMsg is the delete marker of key in bucket, with a compare-and-set
// on lastRev unless it is 0.
func deleteMsg(bucket, key string, lastRev uint64) *nats.Msg {
	m := nats.NewMsg(subjectOf(bucket, key))
	m.Header.Set("KV-Operation", "DEL")
	if lastRev > 0 {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(lastRev, 10))
	}
	return m
}

// deleteKey places a delete marker on key and returns its revision. With
// lastRev > 0 it only does so if key is still at that revision.
func (e *Engine) deleteKey(ctx context.Context, key string, lastRev uint64) (uint64, error) {
	ack, err := e.cfg.JetStream.PublishMsg(ctx, deleteMsg(e.cfg.Bucket, key, lastRev))
	if err != nil {
		return 0, err
	}
	e.avail.wrote(e.clock.Now())
	return ack.Sequence, nil
}
