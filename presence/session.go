package presence

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// MaxDeviceLen bounds SessionInfo.Device and SessionInfo.Client.
const MaxDeviceLen = 128

// SessionInfo describes a new session.
type SessionInfo struct {
	User   string
	Device string
	Client string
	// Status is online (the default), away or busy.
	Status protocol.Status
}

// Session is one connection of one user on this node. Its methods are safe
// for concurrent use; its writes are applied in call order.
type Session struct {
	e    *Engine
	id   string
	user string
	key  string
	info SessionInfo

	// write serializes this session's KV writes (a one-slot semaphore that
	// a caller can give up waiting for).
	write chan struct{}
	// waiting counts the callers waiting for the write slot.
	waiting atomic.Int32

	mu sync.Mutex
	// mu guards the following fields.
	status     protocol.Status // requested: online, away or busy
	text       string
	auto       bool      // away for inactivity (AutoAway)
	since      time.Time // Since as last written; zero: that entry's time
	rev        uint64    // revision of the last write
	lastActive time.Time
	closed     bool

	// graceUntil, guarded by e.ownMu, is when the grace of a session
	// closed on this node ends while the node holds it unwritten
	// (grace.go); zero otherwise.
	graceUntil time.Time
}

func validSessionStatus(s protocol.Status) bool {
	return s == protocol.StatusOnline || s == protocol.StatusAway || s == protocol.StatusBusy
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Connect stores a new session of info.User on this node and returns once
// JetStream has acknowledged it.
func (e *Engine) Connect(ctx context.Context, info SessionInfo) (*Session, error) {
	if err := e.running(); err != nil {
		return nil, err
	}
	if !membership.ValidID(info.User) {
		return nil, invalid("user id %q", info.User)
	}
	if info.Status == "" {
		info.Status = protocol.StatusOnline
	}
	if !validSessionStatus(info.Status) {
		return nil, invalid("session status %q (online, away or busy)", info.Status)
	}
	if len(info.Device) > MaxDeviceLen || len(info.Client) > MaxDeviceLen {
		return nil, invalid("device or client longer than %d bytes", MaxDeviceLen)
	}
	if s, err := e.takeOver(ctx, info); s != nil || err != nil {
		return s, err
	}
	id := newID()
	s := &Session{
		e: e, id: id, user: info.User, key: sessionKey(info.User, id), info: info,
		write:  make(chan struct{}, 1),
		status: info.Status, lastActive: e.clock.Now(),
	}
	// A reconnecting user keeps the time their status began.
	s.since = e.x.inheritSince(info.User, info.Status)
	e.ownMu.Lock()
	e.own[id] = s
	e.ownMu.Unlock()
	if err := s.put(ctx, nil); err != nil {
		e.disown(s)
		return nil, err
	}
	return s, nil
}

// disown removes s from the node's own sessions, unless another Session
// has taken its id over since. A session whose creation failed or that
// was deleted is no longer the node's; a record of it stored all the same
// is an orphan (orphans.go).
func (e *Engine) disown(s *Session) {
	e.ownMu.Lock()
	defer e.ownMu.Unlock()
	e.disownLocked(s)
}

func (e *Engine) disownLocked(s *Session) {
	if e.own[s.id] == s {
		delete(e.own, s.id)
	}
}

// ID is the session id, unique across nodes.
func (s *Session) ID() string { return s.id }

// User is the session's user id.
func (s *Session) User() string { return s.user }

// SetStatus changes the session's status (online, away or busy) and text.
// It counts as activity.
func (s *Session) SetStatus(ctx context.Context, status protocol.Status, text string) error {
	if !validSessionStatus(status) {
		return invalid("session status %q (online, away or busy)", status)
	}
	if len(text) > protocol.MaxStatusText {
		return invalid("status text longer than %d bytes", protocol.MaxStatusText)
	}
	return s.put(ctx, func() {
		s.status, s.text, s.auto = status, text, false
		s.lastActive = s.e.clock.Now()
	})
}

// Rev returns the revision of the session's last write. Engine.WaitRev
// with it waits until this node's index reflects the session.
func (s *Session) Rev() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Touch records activity. A session that AutoAway turned away comes back
// shortly after (the owning node rewrites it).
func (s *Session) Touch() {
	s.mu.Lock()
	s.lastActive = s.e.clock.Now()
	auto := s.auto
	s.mu.Unlock()
	if auto {
		kick(s.e.kicks.autoAway)
	}
}

// Close ends the session. It keeps counting for the grace period, so a
// reconnect in time shows no offline/online pair; then this node deletes
// it (see grace.go). Close writes nothing: the session's record stays as
// it is through the grace.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil // closed already, maybe by Shutdown
	}
	if err := s.e.running(); err != nil {
		return err // after Kill nothing is written
	}
	if s.e.cfg.Grace >= 0 {
		s.hold()
		return nil
	}
	defer s.e.disown(s)
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	_, err := s.e.deleteKey(ctx, s.key, 0)
	return err
}

// linger rewrites the session with an expiry, unchanged otherwise: until,
// or the end of its grace for a session closed in this node's grace
// (Shutdown writes every session it holds so).
func (s *Session) linger(ctx context.Context, until time.Time) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	e := s.e
	e.ownMu.Lock() // with s.mu: as hold
	inGrace := !s.graceUntil.IsZero()
	if inGrace {
		until = s.graceUntil
		e.unholdLocked(s)
	}
	s.mu.Lock()
	if s.closed && !inGrace {
		s.mu.Unlock()
		e.ownMu.Unlock()
		return nil
	}
	s.closed = true
	eff := s.effective()
	s.mu.Unlock()
	e.ownMu.Unlock()
	// Keep the since, so that lingering changes nothing but the expiry.
	since, err := s.e.nextSince(ctx, s, eff, eff)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.since = since
	s.mu.Unlock()
	return s.store(ctx, until)
}

// rewrite stores an open session again as it is (after the lease or the
// stream was lost); a closed one gives ErrSessionClosed (see dropHeld).
func (s *Session) rewrite(ctx context.Context) error {
	return s.put(ctx, func() {})
}

func (s *Session) acquire(ctx context.Context) error {
	if s.tryAcquire() {
		return nil
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case s.write <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryAcquire takes the session's write slot if it is free.
func (s *Session) tryAcquire() bool {
	select {
	case s.write <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Session) release() { <-s.write }

// put applies change (nil: none, for the first write) and stores the
// session. Writes of one session are serialized.
func (s *Session) put(ctx context.Context, change func()) error {
	if err := s.e.running(); err != nil {
		return err
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	before := s.effective()
	if change != nil {
		change()
	}
	after := s.effective()
	s.mu.Unlock()
	if change != nil {
		since, err := s.e.nextSince(ctx, s, before, after)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.since = since
		s.mu.Unlock()
	}
	return s.store(ctx, time.Time{})
}

// effective is the status other nodes see. s.mu must be held.
func (s *Session) effective() protocol.Status {
	if s.auto {
		return protocol.StatusAway
	}
	return s.status
}

// sessionWriteAttempt bounds one attempt of a session write.
const sessionWriteAttempt = 5 * time.Second

// store writes the session's current record. The caller holds the write
// slot.
func (s *Session) store(ctx context.Context, expires time.Time) error {
	s.mu.Lock()
	rec := sessionRecord{
		User: s.user, Session: s.id, Node: s.e.cfg.NodeID, Inst: s.e.inst,
		Status: s.effective(), Text: s.text, Device: s.info.Device, Client: s.info.Client,
		Since: s.since, Expires: expires, Auto: s.auto,
	}
	s.mu.Unlock()
	value := rec.appendJSON(nil)
	// A write the store does not answer (it is electing a leader) is sent
	// again until it is taken, ctx ends or this node turns unavailable,
	// which it does once the store has taken no writes for longer than an
	// election takes. Storing a session twice is harmless: it is a plain
	// put of the same record. An attempt waits as long as the jetstream
	// client's default, so that a store slow under load is not sent more.
	tries := 0
	rev, err := jskv.RetryEach(ctx, sessionWriteAttempt, func(ctx context.Context) (uint64, error) {
		if tries++; tries > 1 {
			if down := s.e.Available(); down != nil {
				// Not wrapped: its cause may read as one to try again.
				return 0, fmt.Errorf("%w: %v", ErrUnavailable, down)
			}
		}
		return s.e.bucket().Put(ctx, s.key, value)
	})
	if err != nil {
		return fmt.Errorf("presence: store session: %w", err)
	}
	s.e.avail.wrote(s.e.clock.Now())
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
	return nil
}

// nextSince is the Since to write after a change of s from status before
// to after: kept if the status stays, else carried over from the user when
// the user already shows that status (another session), else zero (the new
// entry's time).
func (e *Engine) nextSince(ctx context.Context, s *Session, before, after protocol.Status) (time.Time, error) {
	if before != after {
		return e.x.inheritSince(s.user, after), nil
	}
	s.mu.Lock()
	since, rev := s.since, s.rev
	s.mu.Unlock()
	if !since.IsZero() || rev == 0 {
		return since, nil
	}
	// The previous entry's time is its since: learn it from the index,
	// which may not have applied it yet.
	if t := e.x.entrySince(s.key, rev); !t.IsZero() {
		return t, nil
	}
	if err := e.WaitRev(ctx, rev); err != nil {
		if err == ErrClosed {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}
	return e.x.entrySince(s.key, rev), nil
}

// inheritSince is the user's since if the user currently shows status
// through their sessions, zero otherwise.
func (x *index) inheritSince(user string, status protocol.Status) time.Time {
	x.mu.RLock()
	defer x.mu.RUnlock()
	u := x.users[user]
	if u == nil || u.status != status || (u.manual != nil && manualApplies(u.manual.rec.Status)) {
		return time.Time{}
	}
	return u.since
}

// entrySince is the since of the session entry key at rev, zero if the
// index holds another revision.
func (x *index) entrySince(key string, rev uint64) time.Time {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if s := x.sessions[key]; s != nil && s.rev == rev {
		return s.since()
	}
	return time.Time{}
}
