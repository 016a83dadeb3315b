package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/presenced/presenced/internal/jskv"
	"go.uber.org/zap"
)

// Engine is one node's presence engine: it watches the presence bucket,
// keeps the whole index in memory, owns this node's sessions and lease, and
// sweeps expired keys. Create it with New, then Start it.
type Engine struct {
	cfg   Config
	log   *zap.Logger
	clock Clock
	x     *index
	ready chan struct{}

	// Set by Start before any goroutine runs, read-only afterwards.
	kv       jetstream.KeyValue
	epoch    string
	cancel   context.CancelFunc // ends the engine's background context
	quit     chan struct{}      // closed to stop the workers (lease, sweeper, auto-away)
	quitOnce sync.Once
	wg       sync.WaitGroup // the workers
	stop     chan struct{}  // closed to stop the watch as well
	stopOnce sync.Once
	watchWG  sync.WaitGroup
	kicks    kicks

	fault atomic.Pointer[error] // why the index stopped following the bucket

	srcWatch sourceWatch // see sourcing.go

	lifeMu sync.Mutex
	// lifeMu guards the following fields.
	state   engineState
	watcher jetstream.KeyWatcher
	// watchQuit and watchDone stop and await the current watch loop, so a
	// stalled watch can be replaced (see restartWatch).
	watchQuit chan struct{}
	watchDone chan struct{}
	bg        context.Context // the engine's background context
	backend   *nats.Subscription

	ownMu sync.Mutex
	// ownMu guards the following fields. Lock order: ownMu before x.mu.
	own      map[string]*Session
	inst     string // this incarnation; renewed when the lease was lost
	leaseRev uint64
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
	sweep, autoAway chan struct{}
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
		kicks: kicks{make(chan struct{}, 1), make(chan struct{}, 1)},
		own:   make(map[string]*Session),
		inst:  newID(),
	}
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

// Epoch names the presence stream: its creation time. A revision is only
// meaningful together with the epoch it was read in; a memory stream that
// was recreated starts counting again.
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
// serves the same snapshots as the others. ctx bounds the start only.
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

	kv, stream, err := e.ensureBucket(ctx)
	if err != nil {
		return err
	}
	e.kv = kv
	e.epoch = stream.CachedInfo().Created.UTC().Format(time.RFC3339Nano)
	e.x.mu.Lock()
	e.x.epoch = e.epoch
	e.x.expiryKick = func() { kick(e.kicks.sweep) }
	e.x.mu.Unlock()

	leaseRev, err := e.putLease(ctx)
	if err != nil {
		return err
	}

	bg, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	// The watch outlives ctx: its ordered consumer is recreated with this
	// context whenever it has to be.
	w, err := jskv.WatchBucket(ctx, bg, kv)
	if err != nil {
		return fmt.Errorf("presence: watch: %w", err)
	}
	loaded := make(chan struct{})
	e.lifeMu.Lock()
	e.bg = bg
	e.watcher = w
	e.watchQuit, e.watchDone = make(chan struct{}), make(chan struct{})
	quit, done := e.watchQuit, e.watchDone
	e.lifeMu.Unlock()
	e.watchWG.Add(1)
	go e.watchLoop(w, loaded, quit, done)
	select {
	case <-loaded:
	case <-ctx.Done():
		return fmt.Errorf("presence: initial load: %w", ctx.Err())
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
	if err := e.subscribeBackend(); err != nil {
		return err
	}

	e.lifeMu.Lock()
	if e.state != stateStarting {
		e.lifeMu.Unlock()
		return ErrClosed // killed meanwhile
	}
	e.state = stateRunning
	e.wg.Add(3)
	go e.leaseLoop()
	go e.sweepLoop()
	go e.sourceLoop()
	if e.cfg.AutoAway > 0 {
		e.wg.Add(1)
		go e.autoAwayLoop()
	}
	e.lifeMu.Unlock()
	close(e.ready)
	e.log.Info("presence: ready", zap.String("epoch", e.epoch), zap.Uint64("rev", e.Rev()))
	return nil
}

// watchLoop applies every entry of the presence bucket to the index, in
// stream order, and publishes the change feed when this node leads.
func (e *Engine) watchLoop(w jetstream.KeyWatcher, loaded, quit, done chan struct{}) {
	defer e.watchWG.Done()
	defer close(done)
	for {
		select {
		case <-e.stop:
			return
		case <-quit:
			return
		case kve, ok := <-w.Updates():
			if !ok {
				select {
				case <-e.stop:
				case <-quit:
				default:
					e.setFault(errors.New("presence: the watch of the presence bucket ended"))
				}
				return
			}
			if kve == nil {
				if loaded != nil {
					e.x.markLoaded()
					close(loaded)
					loaded = nil
				}
				continue
			}
			en := entry{key: kve.Key(), value: kve.Value(), rev: kve.Revision(), created: kve.Created()}
			if kve.Operation() != jetstream.KeyValuePut {
				en.op = opDelete
			}
			e.x.apply(en)
			if ch := e.x.takeChanges(); len(ch) > 0 {
				e.publishChanges(ch)
			}
		}
	}
}

// restartWatch replaces a stalled watch with one that resumes right after
// the last revision applied. A watch's ordered consumer lives on one server;
// when that server dies the client may take long to notice, while the
// stream itself, replicated, goes on with a new leader.
func (e *Engine) restartWatch() {
	e.lifeMu.Lock()
	if e.state != stateRunning {
		e.lifeMu.Unlock()
		return
	}
	old, quit, done, bg := e.watcher, e.watchQuit, e.watchDone, e.bg
	e.lifeMu.Unlock()
	close(quit)
	_ = old.Stop()
	<-done
	from := e.Rev() + 1
	w, err := e.kv.WatchAll(bg, jetstream.ResumeFromRevision(from))
	if err != nil {
		e.log.Warn("presence: resuming the watch failed; retrying at the next lease refresh", zap.Error(err))
		// Keep a closed pair so the next attempt does not close twice.
		e.lifeMu.Lock()
		e.watchQuit, e.watchDone = make(chan struct{}), make(chan struct{})
		close(e.watchDone)
		e.watcher = nopWatcher{}
		e.lifeMu.Unlock()
		return
	}
	e.lifeMu.Lock()
	if e.state != stateRunning {
		e.lifeMu.Unlock()
		_ = w.Stop()
		return
	}
	e.watcher = w
	e.watchQuit, e.watchDone = make(chan struct{}), make(chan struct{})
	quit, done = e.watchQuit, e.watchDone
	e.lifeMu.Unlock()
	e.watchWG.Add(1)
	go e.watchLoop(w, nil, quit, done)
	e.log.Info("presence: watch resumed", zap.Uint64("from", from))
}

// nopWatcher stands for a watch that could not be resumed yet.
type nopWatcher struct{}

func (nopWatcher) Updates() <-chan jetstream.KeyValueEntry { return nil }
func (nopWatcher) Stop() error                             { return nil }

// Err reports a fault that keeps the index from following the bucket: the
// watch ended (the connection was closed), or the presence stream was
// recreated under a new epoch (a memory stream lost by every server). The
// node then serves stale presence and should be restarted; health checks
// should report it. Nil while all is well.
func (e *Engine) Err() error {
	if p := e.fault.Load(); p != nil {
		return *p
	}
	return nil
}

func (e *Engine) setFault(err error) {
	if e.fault.CompareAndSwap(nil, &err) {
		e.log.Error("presence: index no longer follows the bucket; restart this node", zap.Error(err))
	}
}

// checkRev notices a write whose revision is below what the index has
// applied: the stream was recreated.
func (e *Engine) checkRev(rev uint64) {
	if cur := e.x.currentRev(); rev < cur {
		e.setFault(fmt.Errorf("presence: stream revision went from %d back to %d: the presence stream was recreated", cur, rev))
	}
}

// WaitRev blocks until the index has applied revision rev, or ctx ends.
func (e *Engine) WaitRev(ctx context.Context, rev uint64) error {
	for {
		ch, reached := e.x.waitCh(rev)
		if reached {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.stop:
			return ErrClosed
		}
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
// offline), its lease is deleted, and every goroutine ends. Sessions still
// lingering expire through the sweepers of the other nodes.
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
	e.ownMu.Lock()
	own := make([]*Session, 0, len(e.own))
	for _, s := range e.own {
		own = append(own, s)
	}
	clear(e.own)
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
	w := e.watcher
	e.watcher = nil
	e.lifeMu.Unlock()
	e.stopBackend()
	e.quitOnce.Do(func() { close(e.quit) })
	e.stopOnce.Do(func() { close(e.stop) })
	if w != nil {
		_ = w.Stop()
	}
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
	e.watchWG.Wait()
	e.x.close()
}
