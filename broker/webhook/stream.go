package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/presence"
)

// priorityGroup is the one priority group of every webhook consumer. Every
// node pulls in it; the server pins one of them, which alone receives the
// webhook's changes until it stops asking for FailoverAfter.
const priorityGroup = "deliver"

// metaRevision is the consumer metadata key holding the revision of the
// registration the consumer was last configured from.
const metaRevision = "presenced_revision"

// openStream creates the change stream or brings its configuration up to
// date, asking again while a cluster forms.
func openStream(ctx context.Context, cfg Config) (jetstream.Stream, error) {
	sc := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "presenced change feed, kept for webhook delivery",
		Subjects:    []string{cfg.Subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.StreamMaxAge,
		MaxBytes:    cfg.StreamMaxBytes,
		MaxMsgs:     int64(cfg.QueueLimit),
		// Changes carry no message id: nothing to deduplicate.
		Duplicates: min(cfg.StreamMaxAge, time.Second),
	}
	st, err := jskv.CreateStream(ctx, cfg.JetStream, sc)
	if err != nil {
		return nil, fmt.Errorf("webhook: open stream %s: %w", cfg.Stream, err)
	}
	return st, nil
}

// consumerConfig is the durable consumer that delivers w: every node
// derives the same configuration from the same version of w.
func (s *Service) consumerConfig(w Webhook) jetstream.ConsumerConfig {
	start := w.CreatedAt
	var filters []string
	for _, u := range w.Users {
		filters = append(filters, presence.SubjectChanges+u)
	}
	return jetstream.ConsumerConfig{
		Durable:       w.ID,
		Description:   "presenced webhook delivery",
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &start,
		// Batches go one at a time, so acknowledging the last message of
		// one acknowledges the whole batch.
		AckPolicy: jetstream.AckAllPolicy,
		AckWait:   s.cfg.FailoverAfter,
		// Unlimited: a batch is retried until delivered.
		MaxDeliver: -1,
		// One batch: the node never holds more than it delivers next.
		MaxAckPending:  s.cfg.BatchSize,
		FilterSubjects: filters,
		Replicas:       s.cfg.Replicas,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{priorityGroup},
		PinnedTTL:      s.cfg.FailoverAfter,
		Metadata:       map[string]string{metaRevision: strconv.FormatUint(w.Revision, 10)},
	}
}

// revisionOf returns the registration revision a consumer was configured
// from.
func revisionOf(cc jetstream.ConsumerConfig) uint64 {
	n, _ := strconv.ParseUint(cc.Metadata[metaRevision], 10, 64)
	return n
}

// ensureConsumer creates w's consumer, or brings it up to w's version and
// to this node's settings. Every node runs it for every version it sees: a
// consumer configured from a newer version is left alone, so that a node
// that lags does not undo what another applied.
func (s *Service) ensureConsumer(ctx context.Context, st jetstream.Stream, w Webhook) (jetstream.Consumer, error) {
	want := s.consumerConfig(w)
	c, err := st.Consumer(ctx, w.ID)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = st.CreateConsumer(ctx, want)
		if errors.Is(err, jetstream.ErrConsumerExists) { // another node's version won
			c, err = st.Consumer(ctx, w.ID)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: consumer %s: %w", w.ID, err)
	}
	have := c.CachedInfo().Config
	rev := revisionOf(have)
	if rev > w.Revision {
		return c, nil
	}
	if rev == w.Revision && have.AckWait == want.AckWait && have.MaxAckPending == want.MaxAckPending && have.PinnedTTL == want.PinnedTTL {
		return c, nil
	}
	upd := have
	upd.AckWait, upd.MaxAckPending, upd.PinnedTTL = want.AckWait, want.MaxAckPending, want.PinnedTTL
	upd.Metadata = map[string]string{}
	for k, v := range have.Metadata {
		if !strings.HasPrefix(k, "_nats") { // the server's own keys
			upd.Metadata[k] = v
		}
	}
	if rev < w.Revision {
		upd.FilterSubject, upd.FilterSubjects = "", want.FilterSubjects
		upd.Metadata[metaRevision] = want.Metadata[metaRevision]
	}
	if c, err = st.UpdateConsumer(ctx, upd); err != nil {
		return nil, fmt.Errorf("webhook: update consumer %s: %w", w.ID, err)
	}
	return c, nil
}

// deleteConsumer removes the consumer of the webhook id; one already gone
// is not an error.
func deleteConsumer(ctx context.Context, st jetstream.Stream, id string) error {
	err := st.DeleteConsumer(ctx, id)
	if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	return fmt.Errorf("webhook: delete consumer %s: %w", id, err)
}

// deleteOrphans removes the consumers of webhooks deleted while no node
// ran to delete them. known reports whether a webhook exists, as of the
// registration revision rev: a consumer configured from a later revision
// belongs to a webhook created since, and is kept.
func deleteOrphans(ctx context.Context, st jetstream.Stream, known func(id string) bool, rev uint64) (int, error) {
	lister := st.ListConsumers(ctx)
	var orphans []string
	for info := range lister.Info() {
		if ValidID(info.Name) && !known(info.Name) && revisionOf(info.Config) <= rev {
			orphans = append(orphans, info.Name)
		}
	}
	if err := lister.Err(); err != nil {
		return 0, fmt.Errorf("webhook: list consumers: %w", err)
	}
	for _, id := range orphans {
		if err := deleteConsumer(ctx, st, id); err != nil {
			return 0, err
		}
	}
	return len(orphans), nil
}
