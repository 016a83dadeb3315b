package presence

import (
	"context"
	"slices"
	"sync"

	"github.com/presenced/presenced/membership"
)

// DefaultQueue is the default bound of a subscriber's queue, in batches.
const DefaultQueue = 256

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Queue is how many batches may wait for Next (default DefaultQueue).
	// A subscriber whose queue overflows is cut: see ErrSlowConsumer.
	Queue int
	// Ready, if set, is called whenever batches are queued or the
	// subscriber fails, so that a caller can drain it with TryNext from a
	// shared worker instead of a goroutine blocked in Next. It runs with the
	// engine's locks held: it must only signal, never block or call back
	// into the engine.
	Ready func()
}

// SubscribeOptions tune one group subscription.
type SubscribeOptions struct {
	// CountsOnly delivers only the group's counts, for very large groups.
	CountsOnly bool
	// FromRev and Epoch ask to resume after revision FromRev of the
	// presence stream Epoch (both from an earlier Snapshot, Resumed or
	// Batch). Call Engine.WaitRev(ctx, FromRev) first when the client comes
	// from another node, which may be slightly ahead.
	FromRev uint64
	Epoch   string
	// Visible, when set, tells whether the subscriber may see a user. A
	// resume whose changes name a user it may not see (one removed from
	// the group before the subscriber joined it, say) is answered with a
	// fresh Snapshot instead: it names only the group's members now.
	Visible func(user string) bool
}

// Initial is what a subscription starts with: a Snapshot, or Resumed when
// a resume was possible.
type Initial interface{ initial() }

// Resumed is the start of a resumed subscription: exactly the deltas after
// the requested revision, oldest first (not coalesced), up to Rev.
type Resumed struct {
	Group         string
	Rev           uint64
	Epoch         string
	Online, Total int
	Changes       []Delta
}

func (Snapshot) initial() {}
func (Resumed) initial()  {}

// Subscriber is one consumer of presence batches, typically one WebSocket
// connection. Its methods are safe for concurrent use. It must be closed.
type Subscriber struct {
	x      *index
	max    int
	notify chan struct{}
	ready  func()

	// index.mu guards the following fields.
	groups    GroupSet         // subscribed groups: counts only?
	countRefs map[string]uint8 // why s is in a group's countSubs: refSub|refWatch
	watchAll  bool
	users     map[string]bool // watched users (see userwatch.go)
	allUsers  bool            // watches every user

	mu sync.Mutex
	// mu guards the following fields. Lock order: index.mu before mu.
	queue []Batch
	spare []Batch
	err   error
}

const (
	refSub   uint8 = 1 // a counts-only subscription
	refWatch uint8 = 2 // WatchCounts of this group
)

// NewSubscriber returns a subscriber with no subscriptions.
func (e *Engine) NewSubscriber(cfg SubscriberConfig) *Subscriber { return e.x.newSubscriber(cfg) }

func (x *index) newSubscriber(cfg SubscriberConfig) *Subscriber {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	s := &Subscriber{
		x: x, max: cfg.Queue, notify: make(chan struct{}, 1), ready: cfg.Ready,
		// groups, countRefs and users: on first use
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.fan.closed {
		s.err = ErrClosed
		return s
	}
	x.fan.all[s] = struct{}{}
	x.fan.subscribers++
	return s
}

func (s *Subscriber) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if s.ready != nil {
		s.ready()
	}
}

func (s *Subscriber) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.queue = s.queue[:0]
	}
	s.mu.Unlock()
	s.wake()
}

func (s *Subscriber) errNow() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// beginLocked prepares a new subscription or watch under x.mu: the index
// must be loaded, and what is pending is delivered first, since all of it
// is older than the initial state the caller returns and all that follows
// is newer.
func (s *Subscriber) beginLocked() error {
	if !s.x.loaded {
		return ErrNotReady
	}
	s.x.flushLocked()
	return s.errNow()
}

// Subscribe starts delivering group's batches and returns where they start
// from: a Snapshot at the current revision, or, when o asks to resume and
// the group's history still holds every delta after o.FromRev, Resumed with
// exactly those deltas. Nothing between the initial state and the first
// batch is lost or repeated. Subscribing again to a group replaces the
// earlier subscription.
func (s *Subscriber) Subscribe(group string, o SubscribeOptions) (Initial, error) {
	if !membership.ValidID(group) {
		return nil, invalid("group id %q", group)
	}
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := s.beginLocked(); err != nil {
		return nil, err
	}
	g := x.groupLocked(group)
	s.leaveLocked(g)
	s.groups.Set(group, o.CountsOnly)
	if o.CountsOnly {
		s.addCountRef(g, refSub)
		return x.snapshotLocked(group, true), nil
	}
	g.subs = append(g.subs, s)
	if o.FromRev > 0 && o.Epoch == x.epoch && o.FromRev <= x.rev {
		ds, ok := g.hist.after(o.FromRev)
		if !ok && o.FromRev >= x.purged {
			ds, ok = x.changesSinceLocked(g, o.FromRev), true
		}
		if ok && o.Visible != nil {
			for _, d := range ds {
				// A member now shares the group with the subscriber: only
				// those who left it may be hidden (and Visible costs a look
				// at their groups).
				if _, member := g.members[d.User]; !member && !o.Visible(d.User) {
					ok = false
					break
				}
			}
		}
		if ok {
			return Resumed{Group: group, Rev: x.rev, Epoch: x.epoch, Online: g.online, Total: len(g.members), Changes: ds}, nil
		}
	}
	snap := x.snapshotLocked(group, false)
	snap.Fresh = o.FromRev > 0
	return snap, nil
}

// Unsubscribe stops delivering group's batches. Batches already queued
// stay queued.
func (s *Subscriber) Unsubscribe(group string) {
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	if g := x.groups[group]; g != nil {
		s.leaveLocked(g)
		x.maybeDropGroup(g)
	}
}

// leaveLocked removes s's subscription (not its count watch) of g.
func (s *Subscriber) leaveLocked(g *group) {
	if _, ok := s.groups.Get(g.id); !ok {
		return
	}
	s.groups.Delete(g.id)
	if i := slices.Index(g.subs, s); i >= 0 {
		g.subs = slices.Delete(g.subs, i, i+1)
	}
	s.dropCountRef(g, refSub)
}

func (s *Subscriber) addCountRef(g *group, ref uint8) {
	old := s.countRefs[g.id]
	if s.countRefs == nil {
		s.countRefs = make(map[string]uint8)
	}
	s.countRefs[g.id] = old | ref
	if old == 0 {
		g.countSubs = append(g.countSubs, s)
	}
}

func (s *Subscriber) dropCountRef(g *group, ref uint8) {
	old, ok := s.countRefs[g.id]
	if !ok || old&ref == 0 {
		return
	}
	if n := old &^ ref; n != 0 {
		s.countRefs[g.id] = n
		return
	}
	delete(s.countRefs, g.id)
	if i := slices.Index(g.countSubs, s); i >= 0 {
		g.countSubs = slices.Delete(g.countSubs, i, i+1)
	}
}

// WatchCounts delivers counts batches whenever the counts of one of groups
// (nil: of every group) change, and returns the current counts. It adds to
// the groups watched so far.
func (s *Subscriber) WatchCounts(groups []string) ([]GroupCount, error) {
	for _, g := range groups {
		if !membership.ValidID(g) {
			return nil, invalid("group id %q", g)
		}
	}
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := s.beginLocked(); err != nil {
		return nil, err
	}
	if groups == nil {
		if !s.watchAll {
			s.watchAll = true
			x.fan.watchAll = append(x.fan.watchAll, s)
		}
		out := make([]GroupCount, 0, len(x.groups))
		for _, g := range x.groups {
			if len(g.members) > 0 {
				out = append(out, countOf(g))
			}
		}
		slices.SortFunc(out, compareCounts)
		return out, nil
	}
	out := make([]GroupCount, 0, len(groups))
	for _, id := range groups {
		g := x.groupLocked(id)
		s.addCountRef(g, refWatch)
		out = append(out, countOf(g))
	}
	return out, nil
}

// UnwatchCountsOf stops the counts of groups that a WatchCounts of named
// groups asked for (its caller lost access to them). A watch of every group
// is left as it is.
func (s *Subscriber) UnwatchCountsOf(groups ...string) {
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range groups {
		if g := x.groups[id]; g != nil {
			s.dropCountRef(g, refWatch)
			x.maybeDropGroup(g)
		}
	}
}

// UnwatchCounts ends every WatchCounts.
func (s *Subscriber) UnwatchCounts() {
	x := s.x
	x.mu.Lock()
	defer x.mu.Unlock()
	s.unwatchLocked()
}

func (s *Subscriber) unwatchLocked() {
	x := s.x
	if s.watchAll {
		s.watchAll = false
		if i := slices.Index(x.fan.watchAll, s); i >= 0 {
			x.fan.watchAll = slices.Delete(x.fan.watchAll, i, i+1)
		}
	}
	for id, ref := range s.countRefs {
		if ref&refWatch != 0 {
			if g := x.groups[id]; g != nil {
				s.dropCountRef(g, refWatch)
				x.maybeDropGroup(g)
			}
		}
	}
}

// Next blocks until batches are queued and returns them, oldest first.
// A subscriber that fell behind, with several batches of a group queued,
// gets them as one (see mergeRuns). The returned slice is valid until the
// next call of Next; the batches' Changes are shared with other
// subscribers and must not be modified.
// Once the queue has overflowed, Next returns ErrSlowConsumer and the
// subscriber is dead (all its subscriptions are gone); after Close or the
// engine's shutdown it returns ErrClosed.
func (s *Subscriber) Next(ctx context.Context) ([]Batch, error) {
	for {
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		if len(s.queue) > 0 {
			out := s.queue
			s.queue, s.spare = s.spare[:0], out
			s.mu.Unlock()
			return mergeRuns(out), nil
		}
		s.drained()
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TryNext is Next without waiting: it returns the queued batches, or none
// when the queue is empty, or the subscriber's error. The returned slice is
// valid until the next call of Next or TryNext.
func (s *Subscriber) TryNext() ([]Batch, error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.err
	}
	if len(s.queue) == 0 {
		s.drained()
		s.mu.Unlock()
		return nil, nil
	}
	out := s.queue
	s.queue, s.spare = s.spare[:0], out
	s.mu.Unlock()
	return mergeRuns(out), nil
}

// drained, with s.mu held and the queue empty, lets go of the batches
// last delivered: the caller of Next or TryNext is done with them, and a
// merged batch's changes are its own. The arrays stay, for the next
// batches to queue without allocating, until Trim.
func (s *Subscriber) drained() {
	clear(s.queue[:cap(s.queue)])
	clear(s.spare[:cap(s.spare)])
	s.spare = s.spare[:0]
}

// Trim gives back what an idle subscriber's queue holds: its two arrays
// and the batches last delivered in them (a merged batch's changes are its
// own). A busy subscriber keeps them, to queue without allocating; the
// server trims those whose client has been silent a while. The slice the
// last Next or TryNext returned stays valid.
func (s *Subscriber) Trim() {
	s.mu.Lock()
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.spare = nil
	s.mu.Unlock()
}

// mergeRuns joins, group by group, the delta batches queued for one
// subscriber into one: a subscriber that fell behind (its writes wait on a
// busy node or a slow client) gets what a window as wide as its delay
// would have given it, the last change of each user, in one frame instead
// of one per window. The merged batch takes the place of the group's last
// one, so batches still never go back in revision. A reset of the group
// ends a run; counts and user-watch batches are left as they are. q is
// changed in place; the merged Changes are new.
func mergeRuns(q []Batch) []Batch {
	if len(q) < 2 || !hasRun(q) {
		return q
	}
	// next[i] is the index of the group's next delta batch after i, or -1.
	next := make([]int, len(q))
	open := make(map[string]int)
	for i := range q {
		next[i] = -1
		b := &q[i]
		switch {
		case b.Reset != nil:
			delete(open, b.Group)
		case mergeable(b):
			if j, ok := open[b.Group]; ok {
				next[j] = i
			}
			open[b.Group] = i
		}
	}
	drop := make([]bool, len(q))
	out := q[:0]
	for i := range q {
		if drop[i] {
			continue
		}
		if next[i] < 0 {
			out = append(out, q[i])
			continue
		}
		// i begins a run: its batches merge into the run's last.
		run := []int{i}
		for j := next[i]; j >= 0; j = next[j] {
			run = append(run, j)
		}
		last := run[len(run)-1]
		for _, j := range run[1 : len(run)-1] {
			drop[j] = true
		}
		q[last] = mergeBatches(q, run)
	}
	clear(q[len(out):])
	return out
}

// mergeable reports whether b is a group's delta batch.
func mergeable(b *Batch) bool { return b.Group != "" && !b.CountsOnly && b.Reset == nil }

// hasRun reports whether some group has two delta batches in q: the
// common case, a few batches of different groups, costs no allocation, and
// a long queue costs one pass.
func hasRun(q []Batch) bool {
	if len(q) > 16 {
		open := make(map[string]bool, len(q))
		for i := range q {
			switch b := &q[i]; {
			case b.Reset != nil:
				delete(open, b.Group)
			case mergeable(b):
				if open[b.Group] {
					return true
				}
				open[b.Group] = true
			}
		}
		return false
	}
	for i := range q {
		if !mergeable(&q[i]) {
			continue
		}
		for j := i + 1; j < len(q); j++ {
			if q[j].Group == q[i].Group {
				if mergeable(&q[j]) {
					return true
				}
				if q[j].Reset != nil {
					break
				}
			}
		}
	}
	return false
}

// seenSets are the sets of users mergeBatches has seen, kept between
// merges: a subscriber that fell behind in a big group merges thousands of
// changes at a time.
var seenSets = sync.Pool{New: func() any { return map[string]struct{}{} }}

// mergeBatches is the batch of run's batches of one group: the last
// change of each user, in the order of those last changes, with the
// counts and revision of the last batch.
func mergeBatches(q []Batch, run []int) Batch {
	n := 0
	for _, i := range run {
		n += len(q[i].Changes)
	}
	seen := seenSets.Get().(map[string]struct{})
	defer func() {
		clear(seen)
		seenSets.Put(seen)
	}()
	picks := make([]Delta, 0, n)
	for k := len(run) - 1; k >= 0; k-- {
		cs := q[run[k]].Changes
		for i := len(cs) - 1; i >= 0; i-- {
			if _, ok := seen[cs[i].User]; !ok {
				seen[cs[i].User] = struct{}{}
				picks = append(picks, cs[i])
			}
		}
	}
	slices.Reverse(picks)
	b := q[run[len(run)-1]]
	b.Changes, b.Merged = picks, true
	return b
}

// Close ends every subscription of s.
func (s *Subscriber) Close() {
	x := s.x
	x.mu.Lock()
	x.detachLocked(s)
	x.mu.Unlock()
	s.fail(ErrClosed)
}

// detachLocked removes s from every group and list.
func (x *index) detachLocked(s *Subscriber) {
	if _, ok := x.fan.all[s]; !ok {
		return
	}
	delete(x.fan.all, s)
	x.fan.subscribers--
	for _, id := range s.groups.IDs() {
		if g := x.groups[id]; g != nil {
			s.leaveLocked(g)
			x.maybeDropGroup(g)
		}
	}
	s.unwatchLocked()
	s.unwatchUsersLocked(nil)
}
