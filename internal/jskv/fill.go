package jskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A watch's consumer lives on one replica of the stream, which the
// cluster picks when the watch is created, and any replica may answer a
// direct get. A replica that lags (one catching up after a partition, or
// stuck retrying its catch-up) serves a resumed watch nothing new, and the
// watch stalls again at every resume that lands there. The stream's
// leader has everything the stream acknowledged, and only the leader
// answers the STREAM.MSG.GET API: a Follower given FollowConfig.JetStream
// reads what it misses there, in order, before it resumes a stalled watch.

// fillLimit bounds the entries one fill reads, one request each; the
// resumed watch delivers the rest.
const fillLimit = 4096

// msgGetRequest and msgGetResponse are the STREAM.MSG.GET API's.
type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
}

type msgGetResponse struct {
	Message *struct {
		Subject string    `json:"subject"`
		Seq     uint64    `json:"seq"`
		Header  []byte    `json:"hdrs,omitempty"`
		Data    []byte    `json:"data,omitempty"`
		Time    time.Time `json:"time"`
	} `json:"message"`
	Error *jetstream.APIError `json:"error"`
}

// errNoMessage is the leader's answer when no message matches.
var errNoMessage = errors.New("no message found")

// jsNoMessageFound is the API's error code for it.
const jsNoMessageFound = 10037

// leaderGet asks the leader of stream for the entry of bucket that req
// names.
func leaderGet(ctx context.Context, js jetstream.JetStream, stream, bucket string, req msgGetRequest) (*entry, error) {
	if _, ok := ctx.Deadline(); !ok {
		// As the JetStream API calls do: a leader that never answers (a
		// stream offline, a leader not yet known) must not hang the caller.
		timeout := js.Options().DefaultTimeout
		if timeout <= 0 {
			timeout = AttemptTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	body, _ := json.Marshal(req)
	msg, err := js.Conn().RequestWithContext(ctx, apiPrefix(js.Options())+"STREAM.MSG.GET."+stream, body)
	if err != nil {
		return nil, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("jskv: message get: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jsNoMessageFound {
			return nil, errNoMessage
		}
		return nil, fmt.Errorf("jskv: message get: %w", resp.Error)
	}
	keys := "$KV." + bucket + "."
	m := resp.Message
	if m == nil || !strings.HasPrefix(m.Subject, keys) {
		return nil, fmt.Errorf("jskv: message get: no entry of bucket %s", bucket)
	}
	e := &entry{bucket: bucket, key: m.Subject[len(keys):], value: m.Data, revision: m.Seq, created: m.Time}
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return nil, fmt.Errorf("jskv: message get: headers: %w", err)
		}
		e.op = operation(h)
		e.msgID = h.Get(jetstream.MsgIDHeader)
	}
	return e, nil
}

// GetFromLeader is kv.Get(key) answered by the leader of the bucket's
// stream. kv.Get is a direct get, which any replica may answer, a lagging
// one with an old revision or none: a read that a compare-and-set or a
// decision that the stream was lost rests on must not come from there.
func GetFromLeader(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	e, err := leaderGet(ctx, js, "KV_"+kv.Bucket(), kv.Bucket(), msgGetRequest{LastFor: "$KV." + kv.Bucket() + "." + key})
	switch {
	case errors.Is(err, errNoMessage):
		return nil, jetstream.ErrKeyNotFound
	case err != nil:
		return nil, err
	case e.op != jetstream.KeyValuePut:
		return nil, jetstream.ErrKeyNotFound
	}
	return e, nil
}

// LastRevision returns the revision of key's last entry as the leader of
// the bucket's stream has it, a value or a deletion, and whether it holds a
// value: the revision a compare-and-set that writes a deleted key again
// expects. A key never written, or purged from the stream, is revision 0.
func LastRevision(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string) (rev uint64, live bool, err error) {
	e, err := leaderGet(ctx, js, "KV_"+kv.Bucket(), kv.Bucket(), msgGetRequest{LastFor: "$KV." + kv.Bucket() + "." + key})
	switch {
	case errors.Is(err, errNoMessage):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return e.revision, e.op == jetstream.KeyValuePut, nil
}

// fill applies the entries after the last applied revision, as the
// stream's leader has them, up to its last or fillLimit of them, and
// reports how many. It runs on the goroutine that applies entries.
func (f *Follower) fill() (int, error) {
	js := f.cfg.JetStream
	if js == nil || !f.loadedYet() {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(f.life, AttemptTimeout)
	defer cancel()
	stream := f.stream.CachedInfo().Config.Name
	n := 0
	for ; n < fillLimit; n++ {
		e, err := leaderGet(ctx, js, stream, f.kv.Bucket(),
			msgGetRequest{Seq: f.applied.Load() + 1, NextFor: "$KV." + f.kv.Bucket() + ".>"})
		if errors.Is(err, errNoMessage) {
			break // the leader has nothing more
		}
		if err != nil {
			return n, err
		}
		f.fills.Add(1) // before apply wakes those who wait for it
		f.apply(e)
	}
	return n, nil
}

// operation is what a stored message does to its key, as a KV watch
// reads it: a delete or purge marker, or a put.
func operation(h nats.Header) jetstream.KeyValueOp {
	switch h.Get("KV-Operation") {
	case "DEL":
		return jetstream.KeyValueDelete
	case "PURGE":
		return jetstream.KeyValuePurge
	}
	switch h.Get(jetstream.MarkerReasonHeader) {
	case "MaxAge", "Purge":
		return jetstream.KeyValuePurge
	case "Remove":
		return jetstream.KeyValueDelete
	}
	return jetstream.KeyValuePut
}

// apiPrefix is the JetStream API prefix js sends its requests with.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return jetstream.DefaultAPIPrefix
}

// entry is a bucket entry read from the leader.
type entry struct {
	bucket, key string
	value       []byte
	revision    uint64
	created     time.Time
	op          jetstream.KeyValueOp
	msgID       string // the Nats-Msg-Id it was written with, if any
}

func (e *entry) Bucket() string                  { return e.bucket }
func (e *entry) Key() string                     { return e.key }
func (e *entry) Value() []byte                   { return e.value }
func (e *entry) Revision() uint64                { return e.revision }
func (e *entry) Created() time.Time              { return e.created }
func (e *entry) Delta() uint64                   { return 0 }
func (e *entry) Operation() jetstream.KeyValueOp { return e.op }

var _ jetstream.KeyValueEntry = (*entry)(nil)
