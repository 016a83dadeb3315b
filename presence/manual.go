package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol"
)

// Manual is a status set by hand.
type Manual struct {
	// Status is busy, away or offline (invisible), which win while the user
	// has any session; empty or online clears the manual status (the text
	// may stay).
	Status protocol.Status
	Text   string
	// Expires, if set, ends the manual status (and its text) at that time.
	Expires time.Time
}

// SetManual sets or clears a user's manual status. Any node may set any
// user's.
func (e *Engine) SetManual(ctx context.Context, user string, m Manual) error {
	if err := e.running(); err != nil {
		return err
	}
	if !membership.ValidID(user) {
		return invalid("user id %q", user)
	}
	if m.Status == protocol.StatusOnline {
		m.Status = ""
	}
	if m.Status != "" && !manualApplies(m.Status) {
		return invalid("manual status %q", m.Status)
	}
	if len(m.Text) > protocol.MaxStatusText {
		return invalid("status text longer than %d bytes", protocol.MaxStatusText)
	}
	if !m.Expires.IsZero() && !m.Expires.After(e.clock.Now()) {
		return invalid("manual status expires in the past")
	}
	key := manualKey(user)
	if m.Status == "" && m.Text == "" {
		rev, err := e.deleteKey(ctx, key, 0)
		if err != nil {
			return fmt.Errorf("presence: clear manual status: %w", err)
		}
		return e.WaitRev(ctx, rev)
	}
	rec := manualRecord{Status: m.Status, Text: m.Text, Expires: m.Expires, Since: e.x.manualSince(user, m.Status)}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	rev, err := e.bucket().Put(ctx, key, b)
	if err != nil {
		return fmt.Errorf("presence: set manual status: %w", err)
	}
	e.avail.wrote(e.clock.Now())
	// Read your own writes: a caller that reads the status next (ManualOf,
	// Status) on this node sees this one.
	return e.WaitRev(ctx, rev)
}

// manualSince keeps the since of an unchanged manual status.
func (x *index) manualSince(user string, status protocol.Status) time.Time {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if u := x.users[user]; u != nil && u.manual != nil && u.manual.rec.Status == status {
		return u.manual.since()
	}
	return time.Time{}
}

// ManualOf returns the user's manual status as this node's index has it,
// and whether there is one.
func (e *Engine) ManualOf(user string) (Manual, bool) {
	x := e.x
	x.mu.Lock()
	defer x.mu.Unlock()
	u := x.users[user]
	if u == nil || u.manual == nil {
		return Manual{}, false
	}
	r := u.manual.rec
	return Manual{Status: r.Status, Text: r.Text, Expires: r.Expires}, true
}

// ForgetUser deletes what was stated of user's status: its manual status
// and its backend sources, each with a compare-and-set on the revision
// this node's index has, so that a newer write stays. Its sessions are
// left to end as connections do. Called when the user is deleted, so that
// a user created later with the same id starts with nothing; every node
// may call it, the first deletion of each record wins and the others lose
// their compare-and-set, which is no error.
func (e *Engine) ForgetUser(ctx context.Context, user string) error {
	if err := e.running(); err != nil {
		return err
	}
	type stated struct {
		key string
		rev uint64
	}
	var recs []stated
	x := e.x
	x.mu.Lock()
	if u := x.users[user]; u != nil {
		if u.manual != nil {
			recs = append(recs, stated{manualKey(user), u.manual.rev})
		}
		for _, s := range u.sessions {
			if s.kind == kindSource {
				recs = append(recs, stated{s.key, s.rev})
			}
		}
	}
	x.mu.Unlock()
	var last uint64
	for _, r := range recs {
		rev, err := e.deleteKey(ctx, r.key, r.rev)
		switch {
		case jskv.WrongSequence(err):
			continue
		case err != nil:
			return fmt.Errorf("presence: forget %s: %w", r.key, err)
		}
		last = max(last, rev)
	}
	if last == 0 {
		return nil
	}
	return e.WaitRev(ctx, last)
}
