package presence

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// A session closed on a running node is held by that node through its
// grace, unwritten: its record stays as the session left it, counting
// through the node's lease like the node's open sessions, and once the
// grace is over the node deletes it (graceLoop). A reconnect of the same
// user from the same device and client to this node within the grace takes
// the closed session over (takeOver): the new connection continues it, and
// nothing is written unless its status or text differs from the record. So
// a reconnect storm, every client at once, costs the store nothing, where
// each reconnect used to cost three writes: the old session's expiry, the
// new session, and the old one's deletion.
//
// A node stopped with SIGTERM writes each session it holds with the expiry
// it has (Shutdown, linger), and the sweepers of the other nodes delete it
// then, as before. A node that dies instead takes them with its open
// sessions: they stop counting when its lease lapses, up to a lease TTL
// after their grace would have ended. A node that lost its lease (stalled,
// cut off) or the stream lets them go (dropHeld): they stopped counting
// with the lease, and writing them again with the node's open sessions
// would bring their users back online for the rest of their grace.

// hold closes the session into this node's grace. It needs no write slot,
// so it cannot fail: a write of the session in flight ends as it would
// have, and whoever deletes or writes the session next takes the slot and
// reads its last revision. Closing and holding happen under e.ownMu, so
// that linger sees a session either open or held.
func (s *Session) hold() {
	e := s.e
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already || e.own[s.id] != s {
		return // closed before, or written by Shutdown and let go
	}
	s.graceUntil = e.clock.Now().Add(e.cfg.Grace)
	e.held[s.user] = append(e.held[s.user], s)
	e.heldOrder = append(e.heldOrder, s)
	e.heldN++
	if len(e.heldOrder) == 1 {
		kick(e.kicks.grace) // the loop sleeps until a session is held
	}
}

// unholdLocked takes a session in grace out of it; e.ownMu is held.
func (e *Engine) unholdLocked(s *Session) {
	s.graceUntil = time.Time{}
	e.heldN--
	hs := e.held[s.user]
	for i, h := range hs {
		if h == s {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(e.held, s.user)
	} else {
		e.held[s.user] = hs
	}
	// heldOrder lets go of s when its turn comes (dueGrace).
}

// dropHeld ends the grace of every session this node holds, without
// waiting for its end: the node lost its lease, or the stream. With del
// set (the lease), each is deleted first with a compare-and-set on its
// revision, so that the lease taken back does not make it count again
// (the node that deleted the lease has most often deleted it already); one
// whose deletion fails stays held, and the error is returned before the
// lease is taken back.
func (e *Engine) dropHeld(ctx context.Context, del bool) error {
	e.ownMu.Lock()
	var hs []*Session
	for _, list := range e.held {
		hs = append(hs, list...)
	}
	e.ownMu.Unlock()
	for _, s := range hs {
		if err := e.dropOne(ctx, s, del); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) dropOne(ctx context.Context, s *Session, del bool) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	if !e.inGrace(s) {
		return nil
	}
	if del {
		if _, err := e.deleteKey(ctx, s.key, s.Rev()); err != nil && !isWrongSeq(err) {
			return fmt.Errorf("presence: deleting a session in its grace: %w", err)
		}
	}
	e.letGo(s)
	return nil
}

// takeOver continues a session of info's user closed on this node from
// the same device and client, in its grace, as a new Session with the
// same id; nil if there is none. It writes the session only if its status
// or text changes.
func (e *Engine) takeOver(ctx context.Context, info SessionInfo) (*Session, error) {
	e.ownMu.Lock()
	var old *Session
	for _, h := range e.held[info.User] {
		if h.info.Device == info.Device && h.info.Client == info.Client {
			old = h // the latest closed
		}
	}
	e.ownMu.Unlock()
	if old == nil || e.Available() != nil {
		return nil, nil // a new session, or the reason why none can be
	}
	if err := old.acquire(ctx); err != nil {
		return nil, err
	}
	defer old.release()
	e.ownMu.Lock()
	if old.graceUntil.IsZero() {
		e.ownMu.Unlock()
		return nil, nil // its grace ended meanwhile
	}
	e.unholdLocked(old)
	old.mu.Lock()
	s := &Session{
		e: e, id: old.id, user: old.user, key: old.key, info: old.info,
		write:  make(chan struct{}, 1),
		status: old.status, text: old.text, auto: old.auto, since: old.since, rev: old.rev,
		lastActive: e.clock.Now(),
	}
	old.mu.Unlock()
	e.own[s.id] = s
	e.ownMu.Unlock()
	if s.status == info.Status && s.text == "" && !s.auto {
		return s, nil // the record says it all already
	}
	if err := s.put(ctx, func() { s.status, s.text, s.auto = info.Status, "", false }); err != nil {
		e.disown(s) // as a Connect that failed
		return nil, err
	}
	return s, nil
}

// graceLoop deletes the sessions this node holds once their grace is over.
func (e *Engine) graceLoop() {
	for {
		due, next := e.dueGrace(e.clock.Now())
		for len(due) > 0 {
			select {
			case <-e.quit:
				return // Shutdown writes what is still held
			default:
			}
			n := min(len(due), graceBatch)
			e.endGraces(due[:n])
			due = due[n:]
		}
		wait := e.cfg.Grace // nothing held: until hold kicks
		if !next.IsZero() {
			wait = next.Sub(e.clock.Now())
		}
		if !e.sleep(wait, e.kicks.grace) {
			return
		}
	}
}

// dueGrace pops the held sessions whose grace is over at now, and returns
// when the next one's ends (zero: none held). Every grace is as long, so
// heldOrder is in the order they end.
func (e *Engine) dueGrace(now time.Time) ([]*Session, time.Time) {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	var due []*Session
	for len(e.heldOrder) > 0 {
		s := e.heldOrder[0]
		if !s.graceUntil.IsZero() {
			if s.graceUntil.After(now) {
				return due, s.graceUntil
			}
			due = append(due, s)
		}
		e.heldOrder[0] = nil
		e.heldOrder = e.heldOrder[1:]
	}
	e.heldOrder = nil
	return due, time.Time{}
}

// graceBatch bounds the deletions the grace loop sends before it waits for
// their acknowledgements.
const graceBatch = MaxBatch

// endGraces deletes held sessions whose grace is over, unless taken over
// or written meanwhile. The deletions are pipelined, as PublishBatch's
// writes are: a load balancer that drops its connections closes
// thousands of sessions at once, and one deletion after the other, a
// round trip to the stream's leader each, announced the last of their
// users offline seconds after its grace (BenchmarkGraceEnd). A session
// stays held until its deletion is stored: one the store does not take
// (an election, a node that has just come back from a stall), or whose
// write slot is taken by a write the store has not answered yet, is tried
// again an eighth of a lease refresh later, as the sweeper's deletions
// are, at the head of the queue.
func (e *Engine) endGraces(due []*Session) {
	type deletion struct {
		s   *Session
		ack jetstream.PubAckFuture
	}
	dels := make([]deletion, 0, len(due))
	for _, s := range due {
		if !s.tryAcquire() {
			e.retryGrace(s)
			continue
		}
		if !e.inGrace(s) {
			s.release()
			continue
		}
		ack, err := e.cfg.JetStream.PublishMsgAsync(deleteMsg(e.cfg.Bucket, s.key, s.Rev()),
			jetstream.WithStallWait(e.cfg.LeaseRefresh/2))
		if err != nil {
			e.graceNotEnded(s, err)
			continue
		}
		dels = append(dels, deletion{s, ack})
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseRefresh/2)
	defer cancel()
	for _, d := range dels {
		var err error
		select {
		case <-d.ack.Ok():
			e.avail.wrote(e.clock.Now())
		case err = <-d.ack.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil && !isWrongSeq(err) {
			e.graceNotEnded(d.s, err)
			continue
		}
		e.letGo(d.s)
		d.s.release()
	}
}

// graceNotEnded releases s, whose deletion at the end of its grace failed
// with err, and tries it again shortly.
func (e *Engine) graceNotEnded(s *Session, err error) {
	s.release()
	e.log.Warn("presence: a session's grace ended and its deletion failed; trying again", zap.String("key", s.key), zap.Error(err))
	e.retryGrace(s)
}

// letGo takes a held session out of its grace and out of this node's
// sessions: it is deleted, or no longer counts.
func (e *Engine) letGo(s *Session) {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	if s.graceUntil.IsZero() {
		return
	}
	e.unholdLocked(s)
	e.disownLocked(s)
}

// inGrace reports whether s is closed and in this node's grace.
func (e *Engine) inGrace(s *Session) bool {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	return !s.graceUntil.IsZero()
}

// retryGrace puts a held session whose grace is over back at the head of
// the queue, due again shortly.
func (e *Engine) retryGrace(s *Session) {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	if s.graceUntil.IsZero() {
		return
	}
	s.graceUntil = e.clock.Now().Add(e.cfg.LeaseRefresh / 8)
	e.heldOrder = append([]*Session{s}, e.heldOrder...)
	kick(e.kicks.grace) // the loop's next wake may be later
}
