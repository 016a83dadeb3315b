package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/protocol"
)

// writerSource is the backend source every writer publishes as.
const writerSource = "chaos"

// ack is one acknowledged status change.
type ack struct {
	seq  int
	text string
	rev  uint64
	at   time.Time
}

// Writer is a user whose status only a backend source sets: change seq
// says away (odd) or busy (even) with the text "<user>-<seq>".
type Writer struct {
	ID string

	mu sync.Mutex
	// mu guards the following fields.
	tried int   // highest seq sent (acknowledged or not)
	acks  []ack // in seq order
	fails int
}

func statusOf(seq int) protocol.Status {
	if seq%2 == 1 {
		return protocol.StatusAway
	}
	return protocol.StatusBusy
}

// lastAck returns the last acknowledged change (seq 0: none).
func (w *Writer) lastAck() ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.acks) == 0 {
		return ack{}
	}
	return w.acks[len(w.acks)-1]
}

// check compares what a snapshot shows of the writer with its last
// acknowledged change; a later change that was sent but not acknowledged
// may have landed too. It returns "" when the snapshot holds it.
func (w *Writer) check(s Snapshot) string {
	w.mu.Lock()
	tried := w.tried
	w.mu.Unlock()
	last := w.lastAck()
	if last.seq == 0 {
		return ""
	}
	st, text := s.status(w.ID)
	seq := 0
	if rest, ok := strings.CutPrefix(text, w.ID+"-"); ok {
		seq, _ = strconv.Atoi(rest)
	}
	if seq < last.seq || seq > tried || st != statusOf(seq) {
		return fmt.Sprintf("%s shows %s %q, acknowledged %s %q", w.ID, st, text, statusOf(last.seq), last.text)
	}
	return ""
}

// Writers publish acknowledged status changes over REST.
type Writers struct {
	list    []*Writer
	api     *API
	cluster *Cluster
	tl      *Timeline

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWriters(api *API, c *Cluster, tl *Timeline, ids []string) *Writers {
	ws := &Writers{api: api, cluster: c, tl: tl}
	for _, id := range ids {
		ws.list = append(ws.list, &Writer{ID: id})
	}
	return ws
}

// Start makes every writer publish every interval, count changes each
// (0: until Stop), writer i to node i (mod the nodes) and, when that node
// fails, to the next node that is up.
func (ws *Writers) Start(interval time.Duration, count int, fixed *Node) {
	ctx, cancel := context.WithCancel(context.Background())
	ws.cancel = cancel
	for i, w := range ws.list {
		ws.wg.Go(func() { ws.run(ctx, w, i, interval, count, fixed) })
	}
}

// Wait waits until writers with a count are done.
func (ws *Writers) Wait() { ws.wg.Wait() }

// Stop stops the writers and waits for the calls in flight.
func (ws *Writers) Stop() {
	if ws.cancel != nil {
		ws.cancel()
	}
	ws.wg.Wait()
}

func (ws *Writers) run(ctx context.Context, w *Writer, i int, interval time.Duration, count int, fixed *Node) {
	nodes := ws.cluster.Nodes
	at := i % len(nodes)
	for seq := 1; count == 0 || seq <= count; {
		n := nodes[at]
		if fixed != nil {
			n = fixed
		}
		text := fmt.Sprintf("%s-%d", w.ID, seq)
		w.mu.Lock()
		w.tried = seq
		w.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		rev, r, err := ws.api.Publish(pctx, n.URL, w.ID, statusOf(seq), text, writerSource)
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := interval
		switch {
		case err == nil && r.OK():
			w.mu.Lock()
			w.acks = append(w.acks, ack{seq: seq, text: text, rev: rev, at: time.Now()})
			w.mu.Unlock()
			seq++
		case err == nil && r.Status == http.StatusTooManyRequests:
			wait = 100 * time.Millisecond // not performed: send the same change again
		default:
			w.mu.Lock()
			w.fails++
			w.mu.Unlock()
			seq++
			if fixed == nil {
				at = ws.nextUp(at)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (ws *Writers) nextUp(at int) int {
	nodes := ws.cluster.Nodes
	now := time.Now()
	for i := 1; i <= len(nodes); i++ {
		j := (at + i) % len(nodes)
		if ws.tl.Majority(nodes[j].Name, now) {
			return j
		}
	}
	return (at + 1) % len(nodes)
}

// acked counts the acknowledged changes of every writer.
func (ws *Writers) acked() int {
	n := 0
	for _, w := range ws.list {
		w.mu.Lock()
		n += len(w.acks)
		w.mu.Unlock()
	}
	return n
}

// failed counts the changes that were not acknowledged.
func (ws *Writers) failed() int {
	n := 0
	for _, w := range ws.list {
		w.mu.Lock()
		n += w.fails
		w.mu.Unlock()
	}
	return n
}

// lost lists the writers whose last acknowledged change snapshot s does
// not hold.
func (ws *Writers) lost(s Snapshot) []string {
	var out []string
	for _, w := range ws.list {
		if msg := w.check(s); msg != "" {
			out = append(out, msg)
		}
	}
	return out
}
