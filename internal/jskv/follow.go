package jskv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// A KV watch is an ordered consumer that lives on one server. When that
// server dies, or the stream's leader moves, the client may take long to
// notice, or never does: the watch goes silent while the bucket goes on.
// A Follower applies every entry of a bucket in order and keeps doing so:
// it checks that the stream is not ahead of it without progress, and
// resumes a watch that stalled or ended right after the last revision it
// applied.

// QuietStall is how long the stream must have been quiet, its last entry
// stored, for a check that finds it unapplied, with nothing applied since
// the check before, to take the watch for stalled at once (at most half
// of FollowConfig.Check): a watch that delivers has it in milliseconds.
const QuietStall = 250 * time.Millisecond

// FollowConfig configures Follow. Apply is required.
type FollowConfig struct {
	// Apply receives every entry, in stream order, from one goroutine; a
	// nil entry marks the end of the initial load (once). It must not call
	// back into the Follower.
	Apply func(jetstream.KeyValueEntry)
	// History makes the initial load deliver every revision the bucket
	// keeps, not only the last of each key.
	History bool
	// Check is how often the follower compares its revision with the
	// stream's (default 1s). Two checks in a row that find the stream
	// ahead, having moved, while nothing was applied, resume the watch;
	// one does when the stream has been quiet for QuietStall since.
	Check time.Duration
	// OnResume is told why the watch was resumed (for metrics and logs).
	OnResume func(reason string)
	// Logger (default zap.NewNop()).
	Logger *zap.Logger
	// GoneAfter is how long the stream must answer "not found" to the
	// follower's checks before Gone reports it (default 10s): a stream
	// deleted, or a NATS whose store was wiped, is not coming back.
	GoneAfter time.Duration
	// JetStream, when set, is what the follower reads the entries a
	// stalled or ended watch missed with, from the stream's leader, before
	// every attempt to resume the watch (see fill.go): a watch resumed on
	// a lagging replica would stall again. Its connection also hears the
	// stream's leader-elected advisories (see electedChecks).
	JetStream jetstream.JetStream
}

// Follower follows one bucket. Create it with Follow; Stop it.
type Follower struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
	cfg    FollowConfig
	log    *zap.Logger

	applied atomic.Uint64
	stored  atomic.Int64 // when the last applied entry was stored, in Unix ns of the servers' clock
	// floor is the stream's last sequence when a resumed watch found
	// nothing to deliver: the messages up to it were removed (purged)
	// before this follower saw them, so being behind it is no stall.
	floor   atomic.Uint64
	resumes atomic.Uint64
	fills   atomic.Uint64 // entries read from the leader for stalled watches
	lagging atomic.Bool   // a stalled or ended watch is being resumed
	gone    atomic.Bool   // the stream answered "not found" for GoneAfter
	loaded  chan struct{}
	kick    chan struct{}
	elected chan struct{} // the stream elected a leader
	quit    chan struct{}
	done    chan struct{}
	life    context.Context
	cancel  context.CancelFunc
	once    sync.Once

	mu sync.Mutex
	// mu guards the following fields. progress is closed and replaced
	// after every applied entry, for Wait; checking cancels the checker's
	// question to the stream, while one is asked.
	progress chan struct{}
	checking context.CancelFunc
}

func (f *Follower) setChecking(cancel context.CancelFunc) {
	f.mu.Lock()
	f.checking = cancel
	f.mu.Unlock()
}

// ErrStopped is returned by Wait once the Follower is stopped.
var ErrStopped = errors.New("jskv: follower stopped")

// Follow starts following kv, whose stream is stream. ctx bounds the
// creation of the first watch (asked again while a cluster forms); the
// follower lives until Stop.
func Follow(ctx context.Context, kv jetstream.KeyValue, stream jetstream.Stream, cfg FollowConfig) (*Follower, error) {
	if cfg.Apply == nil {
		return nil, errors.New("jskv: FollowConfig.Apply is required")
	}
	if cfg.Check <= 0 {
		cfg.Check = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.GoneAfter <= 0 {
		cfg.GoneAfter = 10 * time.Second
	}
	f := &Follower{
		kv: kv, stream: stream, cfg: cfg, log: cfg.Logger,
		loaded: make(chan struct{}), kick: make(chan struct{}, 1), elected: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}), progress: make(chan struct{}),
	}
	f.life, f.cancel = context.WithCancel(context.Background())
	f.listenElections()
	var opts []jetstream.WatchOpt
	if cfg.History {
		opts = append(opts, jetstream.IncludeHistory())
	}
	w, err := WatchBucket(ctx, f.life, kv, opts...)
	if err != nil {
		f.cancel()
		return nil, err
	}
	go f.run(w)
	return f, nil
}

// Loaded is closed once the initial load has been applied.
func (f *Follower) Loaded() <-chan struct{} { return f.loaded }

// Done is closed once the Follower has stopped.
func (f *Follower) Done() <-chan struct{} { return f.done }

// Rev is the revision of the last entry applied.
func (f *Follower) Rev() uint64 { return f.applied.Load() }

// Lagging reports whether the watch stalled or ended and its replacement
// has not delivered anything yet: the index may be behind the bucket.
func (f *Follower) Lagging() bool { return f.lagging.Load() }

// Gone reports a stream that has answered "not found" to every check for
// FollowConfig.GoneAfter: deleted, or lost with the store of a NATS that
// came back empty. It stays so: what the follower applied is no longer
// the stream's, and only a new start can follow what takes its place.
func (f *Follower) Gone() bool { return f.gone.Load() }

// Resumes counts the watches resumed because one stalled or ended.
func (f *Follower) Resumes() uint64 { return f.resumes.Load() }

// Filled counts the entries read from the stream's leader because a watch
// stalled (see FollowConfig.JetStream).
func (f *Follower) Filled() uint64 { return f.fills.Load() }

// Check asks for a check of the watch now, as a caller that waits for a
// revision longer than it should does.
func (f *Follower) Check() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Wait blocks until revision rev has been applied, ctx ends or the
// Follower stops. A wait that takes longer than half a check interval
// asks for a check, so that a write never waits long behind a stalled
// watch.
func (f *Follower) Wait(ctx context.Context, rev uint64) error {
	slow := time.NewTimer(f.cfg.Check / 2)
	defer slow.Stop()
	for {
		f.mu.Lock()
		ch := f.progress
		f.mu.Unlock()
		if f.applied.Load() >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-slow.C:
			f.Check()
			slow.Reset(f.cfg.Check)
		case <-f.done:
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stop ends the watch and waits for the follower's goroutines.
func (f *Follower) Stop() {
	f.once.Do(func() { close(f.quit) })
	<-f.done
}

// run applies entries and replaces the watch when the checker, or the
// watch itself, says it must be.
func (f *Follower) run(w jetstream.KeyWatcher) {
	defer close(f.done)
	resume := make(chan stall, 1)
	checkerDone := make(chan struct{})
	go func() {
		defer close(checkerDone)
		f.checker(resume)
	}()
	defer func() {
		f.cancel() // ends a check waiting for the stream's answer
		<-checkerDone
	}()
	updates := w.Updates()
	// fresh is the stream's last sequence seen when the current watch was
	// resumed, until the watch delivers its first item.
	var fresh uint64
	// A resumed watch may sit on a replica that lags: until it delivers an
	// entry not applied yet, what it misses is read from the stream's
	// leader every FillEvery (nothing when FollowConfig.JetStream is nil).
	var catchUp *time.Ticker
	var fillTick <-chan time.Time
	catching := func(on bool) {
		switch {
		case on && catchUp == nil && f.cfg.JetStream != nil:
			catchUp = time.NewTicker(min(FillEvery, f.cfg.Check/2))
			fillTick = catchUp.C
		case !on && catchUp != nil:
			catchUp.Stop()
			catchUp, fillTick = nil, nil
		}
	}
	defer catching(false)
	for {
		select {
		case <-f.quit:
			go stopWatch(w) // deleting its consumer may wait for a dead server
			return
		case r := <-resume:
			if w = f.resume(w, r.reason); w == nil {
				return
			}
			updates, fresh = w.Updates(), r.last
			catching(true)
		case <-fillTick:
			_, _ = f.fill() // a failure is read again at the next tick
		case e, ok := <-updates:
			if !ok {
				if w = f.resume(w, "the watch ended"); w == nil {
					return
				}
				updates, fresh = w.Updates(), 0
				catching(true)
				continue
			}
			f.lagging.Store(false)
			if e == nil {
				if fresh > 0 && f.loadedYet() {
					f.floor.Store(max(f.floor.Load(), fresh)) // nothing was pending
				}
				fresh = 0
				if !f.loadedYet() {
					f.cfg.Apply(nil)
					close(f.loaded)
				}
				continue
			}
			fresh = 0
			if e.Revision() <= f.applied.Load() {
				continue // a resumed watch may repeat what was applied
			}
			catching(false) // the watch delivers what is new
			f.apply(e)
		}
	}
}

// apply applies e, the entry after the last applied one, and wakes Wait.
func (f *Follower) apply(e jetstream.KeyValueEntry) {
	f.cfg.Apply(e)
	f.stored.Store(e.Created().UnixNano())
	f.applied.Store(e.Revision())
	f.mu.Lock()
	close(f.progress)
	f.progress = make(chan struct{})
	f.mu.Unlock()
}

// stopWatch stops w and reads what it still delivers until it is closed.
// nats.go's watch handler waits on a full Updates channel, and stopping
// the watch does not free it: a stopped watch nobody reads would keep its
// subscription's goroutine, and the entries it holds, for good.
//
// A watch whose subscription was closed before nats.go handed it out (its
// context ended, or its connection closed, as the consumer was created)
// never closes Updates: the handler that would was set too late. Its Stop
// says so, and reading what is there is enough: the subscription's
// goroutine hands over at most the message it was delivering, two sends
// (the entry and the end of the initial load) that an emptied channel
// takes without waiting.
func stopWatch(w jetstream.KeyWatcher) {
	if err := w.Stop(); errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
		for {
			select {
			case _, ok := <-w.Updates():
				if !ok {
					return
				}
			default:
				return
			}
		}
	}
	for range w.Updates() {
	}
}

// FillEvery is how often a follower whose watch is being resumed reads
// what it misses from the stream's leader (at most half a Check): the
// creation of a watch waits for the cluster's meta leader, which after a
// partition heals is elected seconds after the stream's leader answers,
// and until then the follower must not trail the others by more.
const FillEvery = 50 * time.Millisecond

// resume replaces w with a watch that starts right after the last applied
// revision, asking again until it gets one or the follower stops. It
// returns nil once stopped. Until it has one it reads what was missed
// from the stream's leader (see fill.go), before every attempt and every
// FillEvery while an attempt waits: a watch resumed on a lagging replica
// would stall again, and the leader may answer reads while the creation
// of a watch gets no answer.
func (f *Follower) resume(w jetstream.KeyWatcher, reason string) jetstream.KeyWatcher {
	f.lagging.Store(true)
	go stopWatch(w)
	f.resumes.Add(1)
	if f.cfg.OnResume != nil {
		f.cfg.OnResume(reason)
	}
	poll := time.NewTicker(min(FillEvery, f.cfg.Check/2))
	defer poll.Stop()
	var fillFailed bool
	fill := func() {
		n, err := f.fill()
		switch {
		case err != nil && !fillFailed: // once per resume: the attempts log theirs
			fillFailed = true
			f.log.Warn("jskv: reading what the watch missed from the stream's leader failed; trying again until the watch is resumed",
				zap.String("bucket", f.kv.Bucket()), zap.Int("read", n), zap.Error(err))
		case n > 0:
			f.log.Info("jskv: read what the watch missed from the stream's leader",
				zap.String("bucket", f.kv.Bucket()), zap.Int("entries", n), zap.Uint64("rev", f.applied.Load()))
		}
	}
	for attempt := 0; ; attempt++ {
		fill()
		from := f.applied.Load() + 1
		var opts []jetstream.WatchOpt
		if !f.loadedYet() && !f.cfg.History {
			from = 0 // the initial load was not finished: load again
		}
		if from > 1 {
			opts = append(opts, jetstream.ResumeFromRevision(from))
		} else if f.cfg.History {
			opts = append(opts, jetstream.IncludeHistory())
		}
		got := make(chan jetstream.KeyWatcher, 1)
		errc := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(f.life, 2*f.cfg.Check+time.Second)
			defer cancel()
			nw, err := WatchBucket(ctx, f.life, f.kv, opts...)
			if err != nil {
				errc <- err
				return
			}
			got <- nw
		}()
		// abandon stops the attempt's watch if it ever comes.
		abandon := func() {
			go func() {
				select {
				case nw := <-got:
					stopWatch(nw)
				case <-errc:
				}
			}()
		}
		noAnswer := time.NewTimer(AttemptTimeout)
	wait:
		for {
			select {
			case <-f.quit:
				noAnswer.Stop()
				abandon()
				return nil
			case nw := <-got:
				noAnswer.Stop()
				f.log.Info("jskv: watch resumed", zap.String("bucket", f.kv.Bucket()),
					zap.String("reason", reason), zap.Uint64("from", from))
				return nw
			case err := <-errc:
				noAnswer.Stop()
				f.log.Warn("jskv: resuming the watch failed; trying again", zap.String("bucket", f.kv.Bucket()), zap.Error(err))
				break wait
			case <-noAnswer.C:
				// The consumer's creation got no answer (the client waits
				// 5s for one): while the cluster elects a leader none
				// comes, and the next attempt may reach the new one.
				f.log.Warn("jskv: resuming the watch got no answer; asking again", zap.String("bucket", f.kv.Bucket()),
					zap.Duration("after", AttemptTimeout))
				abandon()
				break wait
			case <-poll.C:
				fill()
			}
		}
		backoff := time.NewTimer(min(time.Duration(attempt+1)*100*time.Millisecond, f.cfg.Check))
	pause:
		for {
			select {
			case <-f.quit:
				backoff.Stop()
				return nil
			case <-backoff.C:
				break pause
			case <-poll.C:
				fill()
			}
		}
	}
}

// electedChecks bounds the checks that follow a leader-elected advisory,
// QuietStall apart (10s of them). The consumer of a watch lives on one
// server; when that server was the leader and died, the watch goes silent
// while the new leader stores on. The check at the advisory may find
// nothing new stored yet; a later one finds what the new leader stored
// and the watch did not deliver, and resumes it within moments of the
// election instead of a Check later. The checks end once the watch
// delivers an entry stored under the new leader: it lives.
const electedChecks = 40

// listenElections subscribes to the stream's leader-elected advisories
// when the follower has a JetStream context. Without the subscription
// (a connection not allowed to hear advisories) the periodic checks still
// find a stalled watch, a Check later.
func (f *Follower) listenElections() {
	if f.cfg.JetStream == nil || f.stream == nil {
		return
	}
	nc := f.cfg.JetStream.Conn()
	if nc == nil {
		return
	}
	info := f.stream.CachedInfo()
	if info == nil {
		return
	}
	name := info.Config.Name
	sub, err := nc.Subscribe(advisoryLeaderElected+name, func(*nats.Msg) {
		select {
		case f.elected <- struct{}{}:
		default:
		}
		// A check asked during the election waits for an answer that
		// only the new leader gives, up to a Check: ask it again now.
		f.mu.Lock()
		if f.checking != nil {
			f.checking()
		}
		f.mu.Unlock()
	})
	if err != nil {
		f.log.Warn("jskv: the stream's leader elections go unheard; a stalled watch is found by the periodic checks",
			zap.String("stream", name), zap.Error(err))
		return
	}
	context.AfterFunc(f.life, func() { _ = sub.Unsubscribe() })
}

// advisoryLeaderElected + <stream> is where nats-server announces a
// stream's new leader, in the stream's account.
const advisoryLeaderElected = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."

func (f *Follower) loadedYet() bool {
	select {
	case <-f.loaded:
		return true
	default:
		return false
	}
}

// stall is the checker's finding.
type stall struct {
	reason string
	last   uint64 // the stream's last sequence at the check
}

// checker compares the stream's last sequence with the applied revision
// every Check (or when kicked) and asks run to resume the watch once the
// stream has been ahead, with nothing applied, at two checks in a row, or
// at once when nothing applied was stored under the stream's current
// leader, or when the stream has been quiet for QuietStall with nothing
// applied since the check before (all times are the servers' clock). A
// stream whose last messages were removed before the follower saw them is
// ahead for good: a resumed watch then finds nothing pending, and run
// raises the floor below which being behind is no stall.
func (f *Follower) checker(resume chan<- stall) {
	t := time.NewTicker(f.cfg.Check)
	defer t.Stop()
	var prevApplied uint64
	var counted time.Time    // the check that last counted as behind
	var resumedFor time.Time // the leader change the watch was last resumed for
	var missing time.Time    // since when the stream answers "not found"
	behind := 0
	// After a leader-elected advisory, up to electedChecks checks run
	// QuietStall apart, until the watch is seen to deliver what the new
	// leader stores, or is resumed.
	burst, fast := 0, time.NewTimer(time.Hour)
	fast.Stop()
	defer fast.Stop()
	for {
		if burst > 0 {
			fast.Reset(QuietStall)
		}
		select {
		case <-f.quit:
			return
		case <-t.C:
		case <-f.kick:
		case <-f.elected:
			burst = electedChecks
		case <-fast.C:
			burst--
		}
		ctx, cancel := context.WithTimeout(f.life, f.cfg.Check)
		f.setChecking(cancel)
		info, err := f.stream.Info(ctx)
		f.setChecking(nil)
		cancel()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if missing.IsZero() {
				missing = time.Now()
			}
			if time.Since(missing) >= f.cfg.GoneAfter && f.gone.CompareAndSwap(false, true) {
				f.log.Error("jskv: the bucket's stream no longer exists: what this node holds of it is gone from the store",
					zap.String("bucket", f.kv.Bucket()), zap.Duration("missing for", time.Since(missing).Round(time.Second)))
			}
			continue
		}
		if err != nil {
			continue // the stream does not answer: nothing to compare with
		}
		missing = time.Time{}
		var leader string
		var leaderSince time.Time
		if c := info.Cluster; c != nil {
			if c.Leader == "" && len(c.Replicas) > 0 {
				continue // a replicated stream electing its leader
			}
			leader = c.Leader
			if c.LeaderSince != nil {
				leaderSince = *c.LeaderSince
			}
		}
		if leaderSince.IsZero() || f.stored.Load() >= leaderSince.UnixNano() {
			burst = 0 // no leader to change, or the watch delivers what it stores
		}
		last, applied := info.State.LastSeq, f.applied.Load()
		why := fmt.Sprintf("stalled at revision %d while the stream is at %d", applied, last)
		switch {
		case last <= max(applied, f.floor.Load()) || applied != prevApplied || !f.loadedYet() && applied == 0:
			behind = 0
		case f.stored.Load() != 0 && leaderSince.After(time.Unix(0, f.stored.Load())) && !leaderSince.Equal(resumedFor):
			// Nothing the stream stored since its leader changed was
			// applied: the watch's consumer may have lived on a server
			// that is gone. Resume now rather than two checks later,
			// once per leader change: a watch resumed since then is
			// given the two checks of a stall to deliver (a server
			// catching up after a partition takes seconds), instead of
			// being resumed again at every check.
			why = fmt.Sprintf("nothing stored since %s leads the stream was applied (at revision %d while the stream is at %d)",
				leader, applied, last)
			resumedFor, burst = leaderSince, 0
			behind = 2
		case applied == prevApplied && !info.TimeStamp.IsZero() &&
			info.TimeStamp.Sub(info.State.LastTime) >= min(QuietStall, f.cfg.Check/2):
			// Nothing applied since the last check, and the stream has
			// been quiet since it stored what is not applied: a watch
			// that delivers would have had it in milliseconds. A watch
			// resumed on a replica that lags finds no more than that.
			why = fmt.Sprintf("stalled at revision %d while the stream, quiet for %s, is at %d",
				applied, info.TimeStamp.Sub(info.State.LastTime).Round(time.Millisecond), last)
			behind = 2
		case time.Since(counted) >= f.cfg.Check/2: // checks asked for in a burst count once
			behind++
			counted = time.Now()
		}
		prevApplied = applied
		if behind >= 2 {
			behind = 0
			select {
			case resume <- stall{why, last}:
			default:
			}
		}
	}
}
