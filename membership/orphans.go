package membership

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
)

// A membership lives only as long as its user and its group. Deleting
// either deletes its memberships first, but a put of a membership made
// through a node that had not applied the deletion yet lands after that
// sweep: it would outlive its user, and a later user with the same id
// would inherit it. Every node that applies such a state drops the
// orphan: once the stream's leader confirms that the user or group is
// gone and the membership is still the one seen, it deletes it with a
// compare-and-set on that revision, so that one node's deletion wins and
// a newer put is kept.

// orphanTimeout bounds the checks and the deletion of one orphan. They
// are asked again while the stream elects a leader, which takes up to
// about 10 s after a server's loss: every node that saw the orphan may be
// waiting out the same election.
const orphanTimeout = 30 * time.Second

// orphan is a membership seen without its user or group.
type orphan struct {
	group, user string
	rev         uint64
}

// orphansOf returns the memberships that change c leaves without their
// user or group. It runs on the watch goroutine, after c was applied, and
// only once the initial load is done: a load replays the bucket with each
// key at its last revision only, so a membership may come before its
// user's last write (sweepOrphans checks the loaded state as a whole).
func (s *Store) orphansOf(c Change) []orphan {
	x := s.index
	switch {
	case c.Kind == KindMember && !c.Deleted:
		_, userOK := x.User(c.Member.UserID)
		_, groupOK := x.Group(c.Member.GroupID)
		if !userOK || !groupOK {
			return []orphan{{c.Member.GroupID, c.Member.UserID, c.Rev}}
		}
	case c.Kind == KindUser && c.Deleted:
		return s.asOrphans(x.GroupsOf(c.User.ID))
	case c.Kind == KindGroup && c.Deleted:
		return s.asOrphans(x.Members(c.Group.ID))
	}
	return nil
}

// asOrphans returns ms, the memberships left by a deletion, with the
// revisions the index has them at.
func (s *Store) asOrphans(ms []Member) []orphan {
	var out []orphan
	for _, m := range ms {
		if _, rev, ok := s.index.memberRev(m.GroupID, m.UserID); ok {
			out = append(out, orphan{m.GroupID, m.UserID, rev})
		}
	}
	return out
}

// loadedOrphans returns the memberships of the loaded index whose user or
// group is missing.
func (s *Store) loadedOrphans() []orphan {
	x := s.index
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []orphan
	for g, ms := range x.members {
		_, groupOK := x.groups[g]
		for u, e := range ms {
			if _, userOK := x.users[u]; !userOK || !groupOK {
				out = append(out, orphan{g, u, e.rev})
			}
		}
	}
	return out
}

// dropOrphans checks each orphan with the stream's leader and deletes the
// ones it confirms, in the background until Close.
func (s *Store) dropOrphans(os []orphan) {
	if len(os) == 0 {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		for _, o := range os {
			if err := s.dropOrphan(o); err != nil && s.bgCtx.Err() == nil {
				s.log.Warn("dropping a membership whose user or group is gone failed; the next node to see it tries again",
					zap.String("group", o.group), zap.String("user", o.user), zap.Error(err))
			}
		}
	}()
}

func (s *Store) dropOrphan(o orphan) error {
	ctx, cancel := context.WithTimeout(s.bgCtx, orphanTimeout)
	defer cancel()
	js := s.cfg.JetStream
	user, err := jskv.GetFromLeaderRetried(ctx, js, s.kv, userKey(o.user))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	group, gerr := jskv.GetFromLeaderRetried(ctx, js, s.kv, groupKey(o.group))
	if gerr != nil && !errors.Is(gerr, jetstream.ErrKeyNotFound) {
		return gerr
	}
	if user != nil && group != nil {
		return nil // both there: the index saw them late
	}
	msg := nats.NewMsg("$KV." + s.cfg.Bucket + "." + MemberKey(o.group, o.user))
	msg.Header.Set("KV-Operation", "DEL")
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(o.rev, 10))
	_, err = jskv.Send(ctx, s.pub, msg)
	if isWrongSequence(err) {
		return nil // deleted by another node, or put again since
	}
	if err == nil {
		s.log.Info("dropped a membership whose user or group is gone", zap.String("group", o.group), zap.String("user", o.user))
	}
	return err
}
