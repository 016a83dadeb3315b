package chaos

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/protocol/client"
)

// policy is what a user does when its connection ends.
type policy int

const (
	// reconnectHome: reconnect to the home node, again and again (the
	// zero value).
	_ policy = iota
	// stayAway: do not reconnect, as a client whose device went with the
	// node.
	stayAway
	// failOver: reconnect to the next node that is up, as a client behind
	// a load balancer does during a rolling restart.
	failOver
)

// span is one WebSocket connection of a user.
type span struct {
	node     string
	from, to time.Time // to is zero while open
	code     int       // close code seen by the client, -1 for none
}

// User is one user's WebSocket session, reconnected by the suite according
// to its policy. Its connections are recorded as spans.
type User struct {
	ID   string
	Home *Node

	kick chan struct{}

	mu sync.Mutex
	// mu guards the following fields.
	policy policy
	spans  []span
}

// SetPolicy changes what the user does when its connection ends.
func (u *User) SetPolicy(p policy) {
	u.mu.Lock()
	u.policy = p
	u.mu.Unlock()
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// Connected reports whether the user has an open connection, and to which
// node.
func (u *User) Connected() (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n := len(u.spans); n > 0 && u.spans[n-1].to.IsZero() {
		return u.spans[n-1].node, true
	}
	return "", false
}

// closes returns the close codes of the connections that ended in
// [from, to].
func (u *User) closes(from, to time.Time) []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []int
	for _, s := range u.spans {
		if !s.to.IsZero() && !s.to.Before(from) && !s.to.After(to) {
			out = append(out, s.code)
		}
	}
	return out
}

// presentThrough reports whether, over [from, to], the user had an open
// connection to a node that was up and in the majority, with no gap
// longer than maxGap (a reconnect inside the grace period is no absence).
func (u *User) presentThrough(tl *Timeline, from, to time.Time, maxGap time.Duration) bool {
	u.mu.Lock()
	spans := append([]span(nil), u.spans...)
	u.mu.Unlock()
	const step = 50 * time.Millisecond
	var gap time.Duration
	for t := from; !t.After(to); t = t.Add(step) {
		in := false
		for _, s := range spans {
			if !t.Before(s.from) && (s.to.IsZero() || !t.After(s.to)) && tl.Majority(s.node, t) {
				in = true
				break
			}
		}
		if in {
			gap = 0
			continue
		}
		if gap += step; gap > maxGap {
			return false
		}
	}
	return true
}

// Users runs the WebSocket sessions of a set of users.
type Users struct {
	list    []*User
	byID    map[string]*User
	cluster *Cluster
	tl      *Timeline
	http    *http.Client
	secret  string
	sem     chan struct{} // bounds dials in flight

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newUsers(c *Cluster, n *Network, tl *Timeline, secret string) *Users {
	return &Users{
		byID: map[string]*User{}, cluster: c, tl: tl, secret: secret,
		http: &http.Client{Transport: n.transport()},
		sem:  make(chan struct{}, 16),
	}
}

// Add registers user id with its home node.
func (us *Users) Add(id string, home *Node) *User {
	u := &User{ID: id, Home: home, kick: make(chan struct{}, 1)}
	us.list = append(us.list, u)
	us.byID[id] = u
	return u
}

// On returns the users whose home is node.
func (us *Users) On(node *Node) []*User {
	var out []*User
	for _, u := range us.list {
		if u.Home == node {
			out = append(out, u)
		}
	}
	return out
}

// Start connects every user and keeps it connected by its policy until
// Close; it returns once all are connected or ctx ends.
func (us *Users) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	us.cancel = cancel
	for _, u := range us.list {
		us.wg.Go(func() { us.run(runCtx, u) })
	}
	for {
		n := 0
		for _, u := range us.list {
			if _, ok := u.Connected(); ok {
				n++
			}
		}
		if n == len(us.list) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %d of %d users connected: %w", n, len(us.list), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close closes every connection and stops reconnecting.
func (us *Users) Close() {
	if us.cancel != nil {
		us.cancel()
	}
	us.wg.Wait()
}

func (us *Users) run(ctx context.Context, u *User) {
	target := u.Home
	for ctx.Err() == nil {
		cl, err := us.dial(ctx, u, target)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-u.kick:
			case <-time.After(300 * time.Millisecond):
			}
			target = us.next(u, target)
			continue
		}
		u.mu.Lock()
		u.spans = append(u.spans, span{node: target.Name, from: time.Now(), code: -1})
		u.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { _ = cl.Close() })
		code := -1
		for ev := range cl.Events() {
			if ev.Type == client.EventDisconnected {
				code = int(websocket.CloseStatus(ev.Err))
			}
		}
		stop()
		u.mu.Lock()
		u.spans[len(u.spans)-1].to = time.Now()
		u.spans[len(u.spans)-1].code = code
		u.mu.Unlock()
		for ctx.Err() == nil {
			u.mu.Lock()
			p := u.policy
			u.mu.Unlock()
			if p != stayAway {
				break
			}
			select {
			case <-ctx.Done():
			case <-u.kick:
			}
		}
		target = us.next(u, target)
	}
}

// next is the node to connect to after target failed or closed.
func (us *Users) next(u *User, target *Node) *Node {
	u.mu.Lock()
	p := u.policy
	u.mu.Unlock()
	if p != failOver {
		return u.Home
	}
	nodes := us.cluster.Nodes
	at := 0
	for i, n := range nodes {
		if n == target {
			at = i
		}
	}
	now := time.Now()
	for i := 1; i <= len(nodes); i++ {
		if n := nodes[(at+i)%len(nodes)]; us.tl.Up(n.Name, now) {
			return n
		}
	}
	return u.Home
}

func (us *Users) dial(ctx context.Context, u *User, n *Node) (*client.Client, error) {
	select {
	case us.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-us.sem }()
	tok, err := userToken(us.secret, u.ID)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return client.Dial(dctx, n.WS, &client.Options{
		Token: tok, HTTPClient: us.http, Device: "chaos", ClientName: "presence-chaos",
		PingInterval: 10 * time.Second, PingTimeout: 10 * time.Second, EventBuffer: 16,
	})
}
