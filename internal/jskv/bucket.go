package jskv

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CreateBucket creates or binds a KV bucket, asking again while the error
// is one a cluster gives as it forms: no answer, JetStream temporarily
// unavailable, or too few servers yet for the replicas asked. Other errors
// return at once.
//
// It asks to create first: JetStream answers a create with a configuration
// identical to the stream's from the stream's leader, without changing
// anything, which is what every restart of a node does. An update is only
// sent when the configuration differs. In a cluster an update is answered
// only by the stream's leader once it applied it, so an update sent while
// the stream elects a leader (a peer restarting, a cluster forming) gets no
// answer at all; the short first deadline asks again soon.
func CreateBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	wait := 2 * time.Second
	for {
		actx, cancel := context.WithTimeout(ctx, wait)
		kv, err := js.CreateKeyValue(actx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.UpdateKeyValue(actx, cfg)
		}
		cancel()
		if err == nil {
			return kv, nil
		}
		if ctx.Err() != nil || !Transient(err) {
			return nil, err
		}
		// Long enough, after a few tries, for a loaded cluster to place
		// a replicated stream.
		wait = min(2*wait, 10*time.Second)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WatchBucket watches every key of kv for as long as life lasts, asking
// again while the error is one a forming cluster gives (a consumer's
// creation unanswered, no leader yet); ctx bounds the asking.
func WatchBucket(ctx, life context.Context, kv jetstream.KeyValue, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	for {
		w, err := kv.WatchAll(life, opts...)
		if err == nil || ctx.Err() != nil || !Transient(err) {
			return w, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Transient reports whether a JetStream error is one of a forming cluster
// or of a stream electing a leader: asking again later may succeed.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// nats-server's JSInsufficientResourcesErr and JSClusterNoPeersErr.
		const insufficientResources, noPeers = 10023, 10005
		return apiErr.Code == 503 || apiErr.ErrorCode == insufficientResources || apiErr.ErrorCode == noPeers
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}
