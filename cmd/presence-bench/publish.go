package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/presenced/presenced/protocol"
)

// Status changes are driven open loop: change seq is sent at its due time
// whatever happened to earlier ones, and latency is measured from the due
// time, so a server (or a publisher) that falls behind shows up as latency
// instead of slowing the load down. A change is made one of two ways:
//
//   - rest: POST /v1/presence/status {user, status: online, text, source},
//     a backend status event, from a pool of keep-alive connections;
//   - ws: set_status {text} over a WebSocket of the publishing user, one
//     connection per publisher, requests pipelined without waiting for
//     replies.
//
// Either way the text is markerText(seq), which subscribers recognise.
const (
	publishREST = "rest"
	publishWS   = "ws"
)

// publishConfig says how to make the changes of a schedule.
type publishConfig struct {
	Mode  string
	Sched schedule
	Plan  *plan
	// Conns is the number of concurrent REST requests (rest only).
	Conns int
	// Batch > 1 sends that many changes per request (rest only).
	Batch      int
	BaseURL    string
	AdminToken string
	Secret     string
	// AckTimeout bounds the wait for the last replies.
	AckTimeout time.Duration
}

// publishResult is what the publisher saw.
type publishResult struct {
	Mode      string         `json:"mode"`
	Scheduled int            `json:"scheduled"`
	Sent      int            `json:"sent"`
	Accepted  int            `json:"accepted"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors,omitempty"`
	// SendLag is from each change's due time to its send; Ack from send to
	// the server's reply.
	SendLag LatencySummary `json:"sendLag"`
	Ack     LatencySummary `json:"ack"`
	// Seconds is from the first due time to the last reply; Rate is
	// Accepted over it.
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`

	ok []bool // accepted, by seq
}

// publishTally collects outcomes from many goroutines.
type publishTally struct {
	lag, ack shardedHist
	sent     atomic.Int64
	mu       sync.Mutex
	// mu guards the following fields.
	errors map[string]int
	ok     []bool
	last   time.Time
}

func (t *publishTally) done(seq int, err error) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.After(t.last) {
		t.last = now
	}
	if err != nil {
		msg := err.Error()
		if len(msg) > 160 {
			msg = msg[:160]
		}
		if _, ok := t.errors[msg]; ok || len(t.errors) < 20 {
			t.errors[msg]++
		}
		return
	}
	t.ok[seq] = true
}

func (t *publishTally) result(pc publishConfig) *publishResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &publishResult{Mode: pc.Mode, Scheduled: pc.Sched.Count, Sent: int(t.sent.Load()), ok: t.ok}
	for _, ok := range t.ok {
		if ok {
			r.Accepted++
		}
	}
	r.Failed = r.Sent - r.Accepted
	if len(t.errors) > 0 {
		r.Errors = t.errors
	}
	r.SendLag = t.lag.Snapshot(false).Summary()
	r.Ack = t.ack.Snapshot(false).Summary()
	if !t.last.IsZero() {
		r.Seconds = t.last.Sub(time.Unix(0, pc.Sched.T0)).Seconds()
		if r.Seconds > 0 {
			r.Rate = float64(r.Accepted) / r.Seconds
		}
	}
	return r
}

// waitDue waits until change seq is due; false if ctx ended first. Go
// timers fire up to a millisecond late when the process is idle (the
// poller sleeps in whole milliseconds), so the last millisecond is spent
// yielding in a loop: a change is sent within microseconds of its due
// time, and its latency measures the server, not the timer.
func waitDue(ctx context.Context, s *schedule, seq int) bool {
	due := time.Unix(0, s.due(seq))
	if d := time.Until(due) - time.Millisecond; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	for time.Now().Before(due) {
		runtime.Gosched()
	}
	return ctx.Err() == nil
}

// publish makes every change of pc.Sched and returns once each has been
// answered or AckTimeout passed after the last was due.
func publish(ctx context.Context, pc publishConfig) (*publishResult, error) {
	t := &publishTally{errors: map[string]int{}, ok: make([]bool, pc.Sched.Count)}
	last := time.Unix(0, pc.Sched.due(max(pc.Sched.Count-1, 0)))
	ctx, cancel := context.WithDeadline(ctx, last.Add(pc.AckTimeout))
	defer cancel()
	var err error
	switch pc.Mode {
	case publishREST:
		publishOverREST(ctx, pc, t)
	case publishWS:
		err = publishOverWS(ctx, pc, t)
	default:
		err = fmt.Errorf("%w: unknown publish mode %q", errConfig, pc.Mode)
	}
	return t.result(pc), err
}

// publishOverREST sends changes from pc.Conns workers, pc.Batch at a time
// (at least one), each request when the last change in it is due: a change
// waits at most one batch's span (Batch / rate) in the publisher, which its
// latency shows. One change goes to POST /v1/presence/status, more to
// /v1/presence/status/batch.
func publishOverREST(ctx context.Context, pc publishConfig, t *publishTally) {
	conns, n := max(pc.Conns, 1), max(pc.Batch, 1)
	rc := newRESTClient(pc.BaseURL, pc.AdminToken, conns)
	defer rc.close()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			send := sendOne
			if n > 1 {
				send = sendBatch
			}
			var body []byte
			errs := make([]error, n)
			for {
				first := int(next.Add(int64(n)) - int64(n))
				if first >= pc.Sched.Count {
					return
				}
				end := min(first+n, pc.Sched.Count)
				if !waitDue(ctx, &pc.Sched, end-1) {
					return
				}
				sent := time.Now()
				for seq := first; seq < end; seq++ {
					t.lag.Record(w, sent.Sub(time.Unix(0, pc.Sched.due(seq))))
				}
				t.sent.Add(int64(end - first))
				body = send(ctx, rc, pc, first, end, body[:0], errs[:end-first])
				ack := time.Since(sent)
				for seq := first; seq < end; seq++ {
					t.ack.Record(w, ack)
					t.done(seq, errs[seq-first])
				}
			}
		})
	}
	wg.Wait()
}

// sendOne posts change first (end is first+1) and sets errs[0]; it returns
// body's buffer for reuse.
func sendOne(ctx context.Context, rc *restClient, pc publishConfig, first, _ int, body []byte, errs []error) []byte {
	body = appendEvent(body, pc, first)
	_, errs[0] = rc.do(ctx, http.MethodPost, "/v1/presence/status", bytes.NewReader(body))
	return body
}

// sendBatch posts changes first..end-1 in one batch and sets each one's
// outcome in errs.
func sendBatch(ctx context.Context, rc *restClient, pc publishConfig, first, end int, body []byte, errs []error) []byte {
	body = append(body, `{"events":[`...)
	for seq := first; seq < end; seq++ {
		if seq > first {
			body = append(body, ',')
		}
		body = appendEvent(body, pc, seq)
	}
	body = append(body, "]}"...)
	resp, err := rc.do(ctx, http.MethodPost, "/v1/presence/status/batch", bytes.NewReader(body))
	var reply struct {
		Results []struct {
			Error *struct{ Code, Message string } `json:"error"`
		} `json:"results"`
	}
	if err == nil {
		if err = json.Unmarshal(resp, &reply); err == nil && len(reply.Results) != end-first {
			err = fmt.Errorf("%d results for %d events", len(reply.Results), end-first)
		}
	}
	for i := range errs {
		switch {
		case err != nil:
			errs[i] = err
		case reply.Results[i].Error != nil:
			errs[i] = fmt.Errorf("%s: %s", reply.Results[i].Error.Code, reply.Results[i].Error.Message)
		default:
			errs[i] = nil
		}
	}
	return body
}

// appendEvent appends change seq as a backend status event.
func appendEvent(b []byte, pc publishConfig, seq int) []byte {
	b = append(b, `{"user":"`...)
	b = append(b, pc.Plan.userID(pc.Plan.publisher(seq))...)
	b = append(b, `","status":"online","text":"`...)
	b = append(b, markerText(seq)...)
	return append(b, `","source":"pb"}`...)
}

// publishOverWS opens one WebSocket per publisher and sends each change
// on its publisher's connection at its due time.
func publishOverWS(ctx context.Context, pc publishConfig, t *publishTally) error {
	p := pc.Plan
	hc := newSourceClient("")
	defer hc.CloseIdleConnections()
	exp := time.Now().Add(24 * time.Hour)
	conns := make([]*websocket.Conn, len(p.publishers))
	defer func() {
		for _, ws := range conns {
			if ws != nil {
				ws.CloseNow()
			}
		}
	}()
	for j, u := range p.publishers {
		tok, err := userToken([]byte(pc.Secret), p.userID(u), exp)
		if err != nil {
			return err
		}
		ws, err := dialWS(ctx, hc, wsURL(pc.BaseURL), tok)
		if err == nil {
			_, err = readHello(ctx, ws)
		}
		if err != nil {
			return fmt.Errorf("presence-bench: publisher %d: %w", j, err)
		}
		conns[j] = ws
	}
	sentAt := make([]atomic.Int64, pc.Sched.Count)
	var pending atomic.Int64
	var wg sync.WaitGroup
	readCtx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	var readers sync.WaitGroup
	for j, ws := range conns {
		readers.Go(func() {
			for {
				_, b, err := ws.Read(readCtx)
				if err != nil {
					return
				}
				f, err := protocol.DecodeServerFrame(b)
				if err != nil || f.ID == 0 || f.ID > uint64(pc.Sched.Count) {
					continue
				}
				seq := int(f.ID - 1)
				t.ack.Record(j, time.Since(time.Unix(0, sentAt[seq].Load())))
				var perr error
				if e := f.Err(); e != nil {
					perr = e
				}
				t.done(seq, perr)
				pending.Add(-1)
			}
		})
		wg.Go(func() {
			for seq := j; seq < pc.Sched.Count; seq += len(conns) {
				if !waitDue(ctx, &pc.Sched, seq) {
					return
				}
				now := time.Now()
				sentAt[seq].Store(now.UnixNano())
				t.lag.Record(j, now.Sub(time.Unix(0, pc.Sched.due(seq))))
				frame := protocol.AppendClientFrame(nil, protocol.ClientFrame{Op: protocol.OpSetStatus, ID: uint64(seq) + 1, Text: markerText(seq)})
				pending.Add(1)
				t.sent.Add(1)
				if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
					pending.Add(-1)
					t.done(seq, fmt.Errorf("write: %w", err))
					return
				}
			}
		})
	}
	wg.Wait()
	// Wait for the outstanding replies, until the deadline.
	for pending.Load() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	stopReaders()
	for _, ws := range conns {
		ws.CloseNow()
	}
	readers.Wait()
	if n := pending.Load(); n > 0 {
		t.mu.Lock()
		t.errors["no reply before the deadline"] += int(n)
		t.mu.Unlock()
	}
	return nil
}

// expectedDeliveries is how many subscriber deliveries the accepted
// changes should cause.
func (r *publishResult) expectedDeliveries(p *plan) uint64 {
	var n uint64
	for seq, ok := range r.ok {
		if ok {
			n += uint64(p.expected(seq))
		}
	}
	return n
}
