package membership

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/internal/jskv"
)

// contended runs try, a write of key that returns ErrConflict when it
// lost a compare-and-set, in the key's turn among this store's writers
// until it does not lose or ctx ends (see jskv.Turns.Contend).
func (s *Store) contended(ctx context.Context, key string, try func(ctx context.Context, retry bool) error) error {
	return s.turns.Contend(ctx, key, ErrConflict, try)
}

// catchUp waits until the index has applied key as the stream's leader
// has it: the write a compare-and-set on the index's revision lost to.
// It reports nothing: the next try does. The read is asked again while
// the stream elects a leader: one sent meanwhile gets no answer, and
// waiting for it would spend the caller's whole deadline.
func (s *Store) catchUp(ctx context.Context, key string) {
	if e, err := jskv.GetFromLeaderRetried(ctx, s.cfg.JetStream, s.kv, key); err == nil {
		_ = s.waitApplied(ctx, e.Revision())
	}
}

// find reports whether the index has what has reports, catching up with
// key as the stream's leader has it when it does not: a record written
// through another node a moment ago may not have reached this node's
// index yet, and a write that rests on it must not answer not found.
func (s *Store) find(ctx context.Context, key string, has func() bool) bool {
	if has() {
		return true
	}
	s.catchUp(ctx, key)
	return has()
}

// CaughtUp waits until the index has applied everything the bucket's
// stream held when its leader was asked: a read of the whole index (who
// holds a seq, an export) then sees every write acknowledged before it,
// through any node.
func (s *Store) CaughtUp(ctx context.Context) error {
	st, err := s.kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("membership: bucket status: %w", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return fmt.Errorf("membership: bucket status of type %T", st)
	}
	return s.waitApplied(ctx, bs.StreamInfo().State.LastSeq)
}
