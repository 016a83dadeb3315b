package chaos

import (
	"context"
	"sync"
	"time"
)

// pollEvery is how often the poller reads every node's snapshot.
const pollEvery = 300 * time.Millisecond

// polled is one node's answer in a round.
type polled struct {
	reply Reply
	err   error
	snap  Snapshot
	ready bool // /readyz answered 200 in the same round
}

// ok reports a snapshot served with 200.
func (p polled) ok() bool { return p.err == nil && p.reply.Status == 200 }

// round is one reading of the group's snapshot on every node that was up.
type round struct {
	at    time.Time
	nodes map[string]polled
}

// Poller reads the group's REST snapshot from every node that is up, a
// few times a second, and keeps every round.
type Poller struct {
	api     *API
	cluster *Cluster
	tl      *Timeline
	group   string

	mu sync.Mutex
	// mu guards the following field.
	rounds []round

	cancel context.CancelFunc
	done   chan struct{}
}

func newPoller(api *API, c *Cluster, tl *Timeline, group string) *Poller {
	return &Poller{api: api, cluster: c, tl: tl, group: group}
}

// Start polls until Close.
func (p *Poller) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			r := p.poll(ctx)
			p.mu.Lock()
			p.rounds = append(p.rounds, r)
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops polling.
func (p *Poller) Close() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

// poll reads every node that is up at once. Revisions move with every
// lease refresh, and a background writer's change reaches the nodes a few
// milliseconds apart, so nodes that differ are read again a few times to
// catch them at the same revision: a difference that outlasts the tries
// (about 100 ms) is a real one.
func (p *Poller) poll(ctx context.Context) round {
	var r round
	for try := 0; try < 6; try++ {
		r = p.pollOnce(ctx)
		keys := map[string]bool{}
		for name, res := range r.nodes {
			if res.ok() && p.tl.Majority(name, r.at) {
				keys[res.snap.key()] = true
			}
		}
		if len(keys) <= 1 {
			break
		}
		time.Sleep(15 * time.Millisecond)
	}
	return r
}

func (p *Poller) pollOnce(ctx context.Context) round {
	now := time.Now()
	r := round{at: now, nodes: map[string]polled{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range p.cluster.Nodes {
		if !p.tl.Up(n.Name, now) {
			continue
		}
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			snap, reply, err := p.api.Snapshot(qctx, n.URL, p.group)
			ready, rerr := p.api.Ready(qctx, n.URL)
			mu.Lock()
			r.nodes[n.Name] = polled{reply: reply, err: err, snap: snap, ready: rerr == nil && ready.OK()}
			mu.Unlock()
		})
	}
	wg.Wait()
	return r
}

// between returns the rounds taken in [from, to].
func (p *Poller) between(from, to time.Time) []round {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []round
	for _, r := range p.rounds {
		if !r.at.Before(from) && !r.at.After(to) {
			out = append(out, r)
		}
	}
	return out
}
