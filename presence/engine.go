package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/presenced/presenced/internal/jskv"
)

// Engine is one node's presence engine: it follows the presence bucket,
// keeps the whole index in memory, owns this node's sessions and lease, and
// sweeps expired keys. Create it with New, then Start it.
type Engine struct {
	cfg   Config
	log   *zap.Logger
	clock Clock
	x     *index
	ready chan struct{}

	kv atomic.Pointer[jetstream.KeyValue] // see bucket

	// Set by Start before any goroutine runs, read-only afterwards.
	quit     chan struct{} // closed to stop the workers (lease, sweeper, auto-away...)
	quitOnce sync.Once
	wg       sync.WaitGroup // the workers
	stop     chan struct{}  // closed to stop everything
	stopOnce sync.Once
	kicks    kicks

	loops    loops        // see loop.go
	srcWatch sourceWatch  // see sourcing.go
	live     liveness     // see liveness.go
	avail    availability // see availability.go
	resets   resetter     // see epoch.go
	counts   engineCounts // see stats.go

	lifeMu sync.Mutex
	// lifeMu guards the following fields.
	state   engineState
	follow  *jskv.Follower // applies the bucket to the index
	backend *nats.Subscription
	beats   *nats.Subscription
	epoch   string

	ownMu sync.Mutex
	// ownMu guards the following fields. Lock order: ownMu before x.mu.
	own      map[string]*Session
	inst     string // this incarnation
	leaseRev uint64
	// unwritten are the sessions whose rewrite after the lease was taken
	// back failed (see rewrite).
	unwritten []*Session
	// The closed sessions of own in their grace, unwritten (grace.go):
	// by user, and in the order their grace ends.
	held      map[string][]*Session
	heldOrder []*Session
	heldN     int

	// orphans are the orphaned sessions found so far, by key; only the
	// lease loop uses it (see orphans.go).
	orphans map[string]orphan
}

type engineState uint8

const (
	stateNew engineState = iota
	stateStarting
	stateRunning
	stateStopped
)

// kicks wake background goroutines early. Each has room for one signal.
type kicks struct {
	sweep, autoAway, grace chan struct{}
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// New validates cfg and returns an engine that is not started yet.
func New(cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(zap.String("node", cfg.NodeID))
	e := &Engine{
		cfg:   cfg,
		log:   log,
		clock: cfg.Clock,
		x:     newIndex(cfg.NodeID, cfg.Clock, log, cfg.Coalesce, cfg.History),
		ready: make(chan struct{}),
		quit:  make(chan struct{}),
		stop:  make(chan struct{}),
		kicks: kicks{make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1)},
		own:   make(map[string]*Session),
		held:  make(map[string][]*Session),
		inst:  newID(),
	}
	e.x.gapCap = cfg.LeaseRefresh
	e.x.fan.budget = cfg.FanoutBudget
	e.avail.init(e)
	e.resets.e = e
	return e, nil
}

// newID returns a random id that is a valid key token.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NodeID is this node's id.
func (e *Engine) NodeID() string { return e.cfg.NodeID }

// Epoch names this incarnation of the presence stream. A revision is only
// meaningful together with the epoch it was read in: a stream that was lost
// and created again starts counting again, under a new epoch.
func (e *Engine) Epoch() string {
	e.x.mu.RLock()
	defer e.x.mu.RUnlock()
	return e.x.epoch
}

// Ready is closed once Start has loaded the whole index.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Start creates or updates the presence bucket, takes this node's lease and
// loads the index. It returns once the initial load is done and every
// membership change stored so far has been sourced and applied, so the node
// serves the same snapshots as the others. ctx bounds the start only; every
// step asks again while the error is one of a cluster forming or electing
// leaders, until ctx ends.
func (e *Engine) Start(ctx context.Context) (err error) {
	e.lifeMu.Lock()
	if e.state != stateNew {
		e.lifeMu.Unlock()
		return errors.New("presence: engine already started")
	}
	e.state = stateStarting
	e.lifeMu.Unlock()
	defer func() {
		if err != nil {
			e.halt()
		}
	}()
	beats, err := e.listenHeartbeats()
	if err != nil {
		return fmt.Errorf("presence: heartbeats: %w", err)
	}
	e.lifeMu.Lock()
	e.beats = beats
	e.lifeMu.Unlock()
	if err := e.load(ctx); err != nil {
		return err
	}
	if err := e.subscribeBackend(); err != nil {
		return err
	}

	e.lifeMu.Lock()
	if e.state != stateStarting {
		e.lifeMu.Unlock()
		return ErrClosed // killed meanwhile
	}
	e.state = stateRunning
	e.goLoop(e.leaseLoop)
	e.goLoop(e.sweepLoop)
	if e.cfg.Grace > 0 { // a negative Grace holds nothing (Close deletes)
		e.goLoop(e.graceLoop)
	}
	e.goLoop(e.sourceLoop)
	e.goLoop(e.heartbeatLoop)
	if e.cfg.AutoAway > 0 {
		e.goLoop(e.autoAwayLoop)
	}
	e.lifeMu.Unlock()
	e.avail.leaseWritten(e.clock.Now())
	close(e.ready)
	e.log.Info("presence: ready", zap.String("epoch", e.Epoch()), zap.Uint64("rev", e.Rev()))
	return nil
}

// bucket is the presence bucket. Start binds it; a reset binds it again
// while the engine's loops and sessions go on using it.
func (e *Engine) bucket() jetstream.KeyValue { return *e.kv.Load() }

// load binds the bucket and its epoch, writes this node's lease, follows
// the bucket until the index holds everything stored so far, and waits for
// membership to be sourced: what Start does, and what a reset does again
// when the stream was lost.
func (e *Engine) load(ctx context.Context) error {
	kv, err := e.ensureBucket(ctx)
	if err != nil {
		return err
	}
	e.kv.Store(&kv)
	epoch, err := e.ensureEpoch(ctx)
	if err != nil {
		return err
	}
	e.x.mu.Lock()
	e.x.epoch = epoch
	e.x.expiryKick = func() { kick(e.kicks.sweep) }
	e.x.onEpoch = func(string) { e.resets.request("the epoch key changed") }
	e.x.mu.Unlock()
	e.lifeMu.Lock()
	e.epoch = epoch
	e.lifeMu.Unlock()

	leaseRev, err := e.putLease(ctx)
	if err != nil {
		return err
	}
	st, err := jskv.Stream(ctx, e.cfg.JetStream, streamName(e.cfg.Bucket))
	if err != nil {
		return fmt.Errorf("presence: bucket %s: %w", e.cfg.Bucket, err)
	}
	f, err := jskv.Follow(ctx, kv, st, jskv.FollowConfig{
		Apply:     e.applyEntry,
		Check:     max(e.cfg.LeaseRefresh/2, 50*time.Millisecond),
		Logger:    e.log,
		JetStream: e.cfg.JetStream,
		OnResume: func(reason string) {
			e.log.Warn("presence: the watch of the presence bucket is resumed", zap.String("reason", reason))
		},
	})
	if err != nil {
		return fmt.Errorf("presence: watch: %w", err)
	}
	e.lifeMu.Lock()
	e.follow = f
	e.lifeMu.Unlock()
	select {
	case <-f.Loaded():
	case <-ctx.Done():
		return fmt.Errorf("presence: initial load of %s: %w", e.cfg.Bucket, ctx.Err())
	case <-e.stop:
		return ErrClosed
	}
	upTo, err := e.sourcedUpTo(ctx)
	if err != nil {
		return err
	}
	if err := e.WaitRev(ctx, max(upTo, leaseRev)); err != nil {
		return fmt.Errorf("presence: catching up: %w", err)
	}
	return nil
}

// applyEntry is the Follower's callback: it applies one entry of the
// presence bucket to the index, in stream order, and publishes the change
// feed when this node leads; nil ends the initial load.
func (e *Engine) applyEntry(kve jetstream.KeyValueEntry) {
	if kve == nil {
		e.x.markLoaded()
		return
	}
	en := entry{key: kve.Key(), value: kve.Value(), rev: kve.Revision(), created: kve.Created()}
	if kve.Operation() != jetstream.KeyValuePut {
		en.op = opDelete
	}
	e.x.apply(en)
	if ch := e.x.takeChanges(); len(ch) > 0 {
		e.publishChanges(ch)
	}
	if en.op == opPut && en.key == leaseKey(e.cfg.NodeID) {
		e.ownLeaseApplied(en.value, en.rev)
	}
}

// ownLeaseApplied learns from the watch that the store took a lease write
// of this incarnation at rev: a refresh that timed out waiting for its
// acknowledgement may have landed all the same. The next refresh then
// builds on rev (instead of failing its compare-and-set on the revision
// before), and availability counts a write sent when the lease says it
// was refreshed.
func (e *Engine) ownLeaseApplied(value []byte, rev uint64) {
	var l leaseRecord
	if json.Unmarshal(value, &l) != nil {
		return
	}
	e.ownMu.Lock()
	ours := l.Inst == e.inst
	if ours && rev > e.leaseRev {
		e.leaseRev = rev
	}
	e.ownMu.Unlock()
	if ours {
		e.avail.wrote(l.Refreshed)
	}
}

// WaitRev blocks until the index has applied revision rev, or ctx ends.
func (e *Engine) WaitRev(ctx context.Context, rev uint64) error {
	w := e.x.waitFor(rev)
	if w == reachedWait {
		return nil
	}
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		e.x.stopWaiting(w)
		return ctx.Err()
	case <-e.stop:
		e.x.stopWaiting(w)
		return ErrClosed
	}
}

// running reports whether the engine serves writes.
func (e *Engine) running() error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	switch e.state {
	case stateRunning:
		return nil
	case stateStopped:
		return ErrClosed
	}
	return ErrNotReady
}

// Shutdown stops the node gracefully: its open sessions enter the grace
// period (so users who reconnect to another node in time never appear
// offline) and those in their grace keep what is left of it, its lease is
// deleted once every session's grace is written, and every goroutine ends.
// Sessions still lingering expire through the sweepers of the other nodes.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.lifeMu.Lock()
	if e.state != stateRunning {
		e.lifeMu.Unlock()
		e.halt()
		return nil
	}
	e.state = stateStopped
	e.lifeMu.Unlock()

	// Stop the writers first so that nothing rewrites a session or the
	// lease behind our back; the watch keeps running meanwhile.
	e.stopBackend()
	e.quitOnce.Do(func() { close(e.quit) })
	e.wg.Wait()

	var errs []error
	now := e.clock.Now()
	// Nothing is written by a node cut off from the store, and the writes
	// of one that is not (yet) known to be wait at most a lease's TTL: the
	// last node of a cluster being stopped has no quorum left.
	if err := e.Available(); err != nil {
		e.log.Warn("presence: shutting down without writing the sessions' grace: the store is unavailable", zap.Error(err))
		e.halt()
		return fmt.Errorf("presence: grace not written: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LeaseTTL)
	defer cancel()
	// A session being closed right now is still in own: Close removes it
	// only once its grace is written, and linger below waits for that
	// write, so the lease never goes before a session's grace is stored.
	own := e.ownSessions()
	e.ownMu.Lock()
	leaseRev := e.leaseRev
	e.ownMu.Unlock()
	// Many sessions: write them a few dozen at a time.
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, s := range own {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.linger(ctx, now.Add(e.cfg.Grace)); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	e.ownMu.Lock()
	clear(e.own)
	clear(e.held)
	e.heldOrder, e.heldN = nil, 0
	e.ownMu.Unlock()
	if _, err := e.deleteKey(ctx, leaseKey(e.cfg.NodeID), leaseRev); err != nil && !isWrongSeq(err) {
		errs = append(errs, fmt.Errorf("presence: delete lease: %w", err))
	}
	e.halt()
	return errors.Join(errs...)
}

// kill stops the engine at once with no cleanup at all, as if the process
// died: sessions and lease stay in the bucket until the other nodes expire
// them.
func (e *Engine) kill() {
	e.lifeMu.Lock()
	e.state = stateStopped
	e.lifeMu.Unlock()
	e.halt()
}

// halt stops every goroutine and subscription; it writes nothing.
func (e *Engine) halt() {
	e.lifeMu.Lock()
	e.state = stateStopped
	f, beats := e.follow, e.beats
	e.follow, e.beats = nil, nil
	e.lifeMu.Unlock()
	e.stopBackend()
	e.quitOnce.Do(func() { close(e.quit) })
	e.stopOnce.Do(func() { close(e.stop) })
	if beats != nil {
		_ = beats.Unsubscribe()
	}
	e.wg.Wait()
	e.resets.wait()
	if f != nil {
		f.Stop()
	}
	e.lifeMu.Lock()
	f, e.follow = e.follow, nil // a reset may have started another
	e.lifeMu.Unlock()
	if f != nil {
		f.Stop()
	}
	e.x.close()
}
