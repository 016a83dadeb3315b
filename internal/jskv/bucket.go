package jskv

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	return createOrUpdate(ctx, jetstream.ErrBucketExists,
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, cfg) },
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.UpdateKeyValue(ctx, cfg) })
}

// CreateStream is CreateBucket for a plain stream.
//
// A stream with a byte limit reserves that much of JetStream's storage,
// and nats-server counts the reservation of an existing stream once more
// against a create of it with the same configuration: on a disk whose
// free space no longer holds twice the limit, the create every restart
// sends is refused with "insufficient storage resources". A stream that
// exists with the configuration asked for is then bound as it is.
func CreateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return createOrUpdate(ctx, jetstream.ErrStreamNameAlreadyInUse,
		func(ctx context.Context) (jetstream.Stream, error) {
			st, err := js.CreateStream(ctx, cfg)
			if isAPIError(err, errInsufficientStorage) {
				if have, lerr := js.Stream(ctx, cfg.Name); lerr == nil && sameStream(have.CachedInfo().Config, cfg) {
					return have, nil
				}
			}
			return st, err
		},
		func(ctx context.Context) (jetstream.Stream, error) { return js.UpdateStream(ctx, cfg) })
}

// errInsufficientStorage is nats-server's JSStorageResourcesExceededErr.
const errInsufficientStorage = 10047

func isAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// sameStream reports whether a stream configured as have is the one want
// asks for, in the fields this project sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
		have.Discard == want.Discard && have.Storage == want.Storage &&
		max(have.Replicas, 1) == max(want.Replicas, 1) && have.MaxAge == want.MaxAge &&
		have.MaxBytes == want.MaxBytes && have.MaxMsgs == want.MaxMsgs &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates) && have.Description == want.Description
}

// createOrUpdate creates, or updates when create says exists, until one
// succeeds or fails for good (see CreateBucket).
func createOrUpdate[T any](ctx context.Context, exists error, create, update func(context.Context) (T, error)) (T, error) {
	wait := 2 * time.Second
	for {
		actx, cancel := context.WithTimeout(ctx, wait)
		v, err := create(actx)
		if errors.Is(err, exists) {
			v, err = update(actx)
		}
		cancel()
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return v, fmt.Errorf("%w (the last attempt: %v)", ctx.Err(), err)
		}
		if !Transient(err) {
			return v, err
		}
		// Long enough, after a few tries, for a loaded cluster to place
		// a replicated stream.
		wait = min(2*wait, 10*time.Second)
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w (the last attempt: %v)", ctx.Err(), err)
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
	if errors.As(err, new(notYetKnown)) {
		return true
	}
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

// AttemptTimeout bounds one request of Retry: a request sent while a
// stream has no leader gets no answer at all, so waiting for it longer only
// delays the next try.
const AttemptTimeout = 2 * time.Second

// Retry calls f until it succeeds, fails with an error that is not
// Transient, or ctx ends. Each attempt waits at most AttemptTimeout.
func Retry[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	return RetryEach(ctx, AttemptTimeout, f)
}

// RetryEach is Retry with attempts of at most attempt each: a write that
// must not be sent again merely because a loaded store answers it late
// waits longer than AttemptTimeout.
func RetryEach[T any](ctx context.Context, attempt time.Duration, f func(context.Context) (T, error)) (T, error) {
	wait := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		v, err := f(actx)
		cancel()
		switch {
		case err == nil, !Transient(err):
			return v, err
		case ctx.Err() != nil:
			return v, fmt.Errorf("%w (the last attempt: %v)", ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w (the last attempt: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// Stream returns the stream name, which the caller has just created or
// bound, asking again while it elects a leader and while the server that
// answers has not yet learnt of it: in a forming cluster a stream created
// through one server is "not found" through another for a moment.
func Stream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	return Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			err = notYetKnown{err}
		}
		return st, err
	})
}

// notYetKnown marks an answer that a moment later may be otherwise.
type notYetKnown struct{ error }

func (e notYetKnown) Unwrap() error { return e.error }

// WrongSequence reports a failed compare-and-set: the key moved on, or
// exists when it should not. A replicated stream answers a conflict with
// another error code than a single-replica one; both are this.
func WrongSequence(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
