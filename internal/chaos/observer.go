package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/protocol"
	"github.com/presenced/presenced/protocol/client"
)

// transition is a user going offline or coming back, as one observer saw
// it.
type transition struct {
	user    string
	offline bool // went offline; otherwise became present
	at      time.Time
	rev     uint64
	via     client.EventType
}

// sighting is one state of a user an observer received, in a snapshot, a
// resume or a delta.
type sighting struct {
	user   string
	status protocol.Status
	text   string
	rev    uint64
	at     time.Time
}

// notice is something an observer was told about its connection or
// subscription: an error push (code) or a close (close code).
type notice struct {
	at   time.Time
	what string // "error", "closed", "subscribe failed", "fresh", "resumed"
	code string
}

// Observer is a WebSocket client on one node, connected with the admin
// token (an observer connection: no session of its own), subscribed to the
// group. It records every change it is told, with its local time.
type Observer struct {
	Node  *Node
	group string

	mu sync.Mutex
	// mu guards the following fields.
	view        map[string]protocol.Status // nil until the first snapshot
	transitions []transition
	sightings   []sighting
	notices     []notice
	frames      int // snapshots, resumes and deltas received
	lastFrame   time.Time
	rev         uint64

	closed chan struct{} // signalled by EventClosed
	cancel context.CancelFunc
	done   chan struct{}
}

func newObserver(n *Node, group string) *Observer {
	return &Observer{Node: n, group: group, closed: make(chan struct{}, 1)}
}

// Start keeps the observer connected and subscribed until Close; it
// returns once the first snapshot arrived or ctx ends.
func (o *Observer) Start(ctx context.Context, hc *http.Client, admin string) error {
	runCtx, cancel := context.WithCancel(context.Background())
	o.cancel, o.done = cancel, make(chan struct{})
	go func() {
		defer close(o.done)
		o.run(runCtx, hc, admin)
	}()
	for {
		o.mu.Lock()
		ok := o.view != nil
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: observer on %s got no snapshot: %w", o.Node.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close disconnects the observer.
func (o *Observer) Close() {
	if o.cancel != nil {
		o.cancel()
		<-o.done
	}
}

func (o *Observer) run(ctx context.Context, hc *http.Client, admin string) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cl, err := client.Dial(dctx, o.Node.WS, &client.Options{
			Token: admin, HTTPClient: hc, ClientName: "presence-chaos-observer",
			Reconnect: true, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
			PingInterval: 5 * time.Second, PingTimeout: 5 * time.Second,
			OnEvent: o.onEvent,
		})
		cancel()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		o.keepSubscribed(ctx, cl)
		_ = cl.Close()
	}
}

// keepSubscribed subscribes again whenever the server ended the
// subscription, as an application would, until ctx ends or the client
// stops.
func (o *Observer) keepSubscribed(ctx context.Context, cl *client.Client) {
	for {
		if !slices.Contains(cl.Groups(), o.group) {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := cl.Subscribe(sctx, o.group)
			cancel()
			if err != nil && ctx.Err() == nil {
				o.note("subscribe failed", errCode(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-o.closed:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func errCode(err error) string {
	if e, ok := errors.AsType[*protocol.Error](err); ok {
		return string(e.Code)
	}
	if c := websocket.CloseStatus(err); c != -1 {
		return fmt.Sprint(int(c))
	}
	return err.Error()
}

func (o *Observer) note(what, code string) {
	o.mu.Lock()
	o.notices = append(o.notices, notice{at: time.Now(), what: what, code: code})
	o.mu.Unlock()
}

// onEvent runs on the client's reading goroutine: it only records.
func (o *Observer) onEvent(ev client.Event) {
	now := time.Now()
	switch ev.Type {
	case client.EventClosed:
		select {
		case o.closed <- struct{}{}:
		default:
		}
		return
	case client.EventDisconnected:
		o.note("closed", errCode(ev.Err))
		return
	case client.EventSubscriptionEnded:
		o.note("error", errCode(ev.Err))
		return
	case client.EventSnapshot, client.EventResumed, client.EventDelta:
	default:
		return
	}
	if ev.Group != o.group {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.frames++
	o.lastFrame = now
	o.rev = ev.Rev
	if ev.Type == client.EventResumed {
		o.notices = append(o.notices, notice{at: now, what: "resumed", code: fmt.Sprint(ev.Rev)})
	}
	if ev.Type == client.EventSnapshot {
		if ev.Fresh {
			o.notices = append(o.notices, notice{at: now, what: "fresh", code: fmt.Sprint(ev.Rev)})
		}
		next := map[string]protocol.Status{}
		for _, m := range ev.Members {
			next[m.User] = m.Status
			o.sightings = append(o.sightings, sighting{user: m.User, status: m.Status, text: m.Text, rev: m.Rev, at: now})
		}
		if o.view != nil {
			for u, st := range o.view {
				if _, ok := next[u]; !ok && st != protocol.StatusOffline {
					o.transitions = append(o.transitions, transition{user: u, offline: true, at: now, rev: ev.Rev, via: ev.Type})
				}
			}
			for u, st := range next {
				o.record(u, st, now, ev.Rev, ev.Type)
			}
		}
		o.view = next
		return
	}
	if o.view == nil {
		return
	}
	for _, m := range ev.Changes {
		st := m.Status
		if m.Removed {
			st = protocol.StatusOffline
		}
		o.sightings = append(o.sightings, sighting{user: m.User, status: m.Status, text: m.Text, rev: m.Rev, at: now})
		o.record(m.User, st, now, m.Rev, ev.Type)
		o.view[m.User] = st
	}
}

// record notes a transition when user's presence differs from the view.
func (o *Observer) record(user string, st protocol.Status, at time.Time, rev uint64, via client.EventType) {
	was, ok := o.view[user]
	wasOff := !ok || was == protocol.StatusOffline
	isOff := st == protocol.StatusOffline
	if wasOff != isOff {
		o.transitions = append(o.transitions, transition{user: user, offline: isOff, at: at, rev: rev, via: via})
	}
}

// present returns the users the observer currently shows present.
func (o *Observer) present() map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]bool{}
	for u, st := range o.view {
		if st != protocol.StatusOffline {
			out[u] = true
		}
	}
	return out
}

// records returns copies of what the observer recorded.
func (o *Observer) records() ([]transition, []sighting, []notice) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.transitions), slices.Clone(o.sightings), slices.Clone(o.notices)
}

// lastActivity returns the frames received so far, when the last came and
// its revision.
func (o *Observer) lastActivity() (frames int, last time.Time, rev uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.frames, o.lastFrame, o.rev
}
