package broker_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
)

// These tests hold webhook delivery to at least once through the death of
// the delivering node: every change reaches the endpoint, in order, and a
// batch id comes twice only when its 2xx was lost.

// hookReceiver is a webhook endpoint on loopback that answers 500 while
// failing is set and records every attempt.
type hookReceiver struct {
	srv     *httptest.Server
	failing atomic.Bool

	mu sync.Mutex
	// mu guards the following fields.
	attempts []hookAttempt
}

// hookAttempt is one POST the receiver got. The batch id and the node are
// read from the headers; the changes from the body.
type hookAttempt struct {
	batch, node string
	status      int
	changes     []hookChange
}

type hookChange struct {
	User   string `json:"user"`
	Status string `json:"status"`
	Text   string `json:"text"`
	Rev    uint64 `json:"rev"`
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.failing.Store(true)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var b struct{ Changes []hookChange }
		_ = json.Unmarshal(raw, &b)
		a := hookAttempt{batch: r.Header.Get("X-Presenced-Batch"), node: r.Header.Get("X-Presenced-Node"),
			status: http.StatusNoContent, changes: b.Changes}
		if h.failing.Load() {
			a.status = http.StatusInternalServerError
		}
		h.mu.Lock()
		h.attempts = append(h.attempts, a)
		h.mu.Unlock()
		w.WriteHeader(a.status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// missing are the revisions of revs the last attempt did not carry.
func (h *hookReceiver) missing(revs []uint64) []uint64 {
	all := h.all()
	if len(all) == 0 {
		return revs
	}
	got := map[uint64]bool{}
	for _, c := range all[len(all)-1].changes {
		got[c.Rev] = true
	}
	var out []uint64
	for _, r := range revs {
		if !got[r] {
			out = append(out, r)
		}
	}
	return out
}

func (h *hookReceiver) all() []hookAttempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.attempts)
}

// accepted returns the changes of the batches answered 2xx, in order.
func (h *hookReceiver) accepted() []hookChange {
	var cs []hookChange
	for _, a := range h.all() {
		if a.status < 300 {
			cs = append(cs, a.changes...)
		}
	}
	return cs
}

// check verifies what the receiver accepted: every rev of want, the revs
// increasing (each change once, in order), no batch id accepted twice
// (nothing here loses a 2xx), and every batch id with the same changes in
// each of its attempts.
func (h *hookReceiver) check(t *testing.T, want []uint64) {
	t.Helper()
	var got []uint64
	for _, c := range h.accepted() {
		got = append(got, c.Rev)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("revs delivered %v: out of order or twice at %d", got, i)
		}
	}
	for _, r := range want {
		if !slices.Contains(got, r) {
			t.Fatalf("change of rev %d never delivered; delivered %v", r, got)
		}
	}
	accepted := map[string]bool{}
	sent := map[string]string{}
	for _, a := range h.all() {
		b, _ := json.Marshal(a.changes)
		if prev, ok := sent[a.batch]; ok && prev != string(b) {
			t.Fatalf("batch %s sent with different changes:\n%s\n%s", a.batch, prev, b)
		}
		sent[a.batch] = string(b)
		if a.status < 300 {
			if accepted[a.batch] {
				t.Fatalf("batch %s accepted twice", a.batch)
			}
			accepted[a.batch] = true
		}
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// webhookFixture makes users, registers a webhook for h and publishes n
// status changes through base's API, each to a user of its own. It returns
// the webhook id and the revs of the changes. A user's change replaced
// before the feed's publisher read it was not published (the presence
// bucket kept one value per key; it keeps 8 now): with four users taking turns, the
// leader's watch lagging four writes behind under load dropped changes
// 13, 14 and 26 of 30 from the feed, and the test waited for all 30 in
// vain.
func webhookFixture(t *testing.T, base string, h *hookReceiver, n int) (string, []uint64) {
	t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%02d", i)
		if st := call(t, "POST", base+"/v1/users", testAdminToken, map[string]any{"id": users[i], "username": users[i]}, nil); st != http.StatusCreated {
			t.Fatalf("create user %s: %d", users[i], st)
		}
	}
	var hook struct{ ID string }
	if st := call(t, "POST", base+"/v1/webhooks", testAdminToken, map[string]any{"url": h.srv.URL + "/presence"}, &hook); st != http.StatusCreated {
		t.Fatalf("create webhook: %d", st)
	}
	statuses := []string{"online", "away", "busy"}
	var revs []uint64
	for i, u := range users {
		var r struct{ Rev uint64 }
		ev := map[string]any{"user": u, "status": statuses[i%len(statuses)], "text": fmt.Sprint("step ", i), "source": "crm"}
		if st := call(t, "POST", base+"/v1/presence/status", testAdminToken, ev, &r); st != http.StatusOK || r.Rev == 0 {
			t.Fatalf("publish status %d: %d", i, st)
		}
		revs = append(revs, r.Rev)
	}
	return hook.ID, revs
}

// queued reads the webhook's queued changes from base's status API.
func queued(t *testing.T, base, id string) int {
	var st struct{ Queued int }
	if code := call(t, "GET", base+"/v1/webhooks/"+id+"/status", testAdminToken, nil, &st); code != http.StatusOK {
		t.Fatalf("webhook status: %d", code)
	}
	return st.Queued
}

// TestWebhookSurvivesSIGKILL kills a node with SIGKILL while it retries a
// batch for a failing endpoint, restarts it on its data, and lets the
// endpoint recover: every change arrives, in order.
func TestWebhookSurvivesSIGKILL(t *testing.T) {
	const changes = 40
	dir := t.TempDir()
	h := newHookReceiver(t)
	cmd, base := startChildProcess(t, dir)
	id, revs := webhookFixture(t, base, h, changes)
	waitFor(t, 60*time.Second, "failed attempts and every change queued", func() bool {
		return len(h.all()) >= 2 && queued(t, base, id) == changes
	})
	before := len(h.all())
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t.Logf("killed the node after %d failed attempts with %d changes queued", before, changes)

	restarted := time.Now()
	s := startServer(t, dir, allowPrivateWebhooks)
	h.failing.Store(false)
	waitFor(t, 60*time.Second, "every change after the restart", func() bool { return len(h.accepted()) >= changes })
	t.Logf("every change delivered %v after the restart began", time.Since(restarted).Round(time.Millisecond))
	h.check(t, revs)
	if st := queued(t, s.URL, id); st != 0 {
		t.Errorf("%d changes still queued", st)
	}
	var ids []string
	for _, a := range h.all() {
		ids = append(ids, fmt.Sprintf("%s:%d", a.batch, a.status))
	}
	t.Logf("attempts (batch:status) %v; %d changes delivered after the restart", ids, len(h.accepted()))
}

func allowPrivateWebhooks(c *broker.Config) { c.WebhookAllowPrivate = true }

// TestWebhookClusterFailover kills the node of a three-node cluster that
// delivers to a failing endpoint: another node takes the webhook over, and
// once the endpoint recovers every change arrives, in order.
func TestWebhookClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	const changes = 30
	nodes := startCluster(t, allowPrivateWebhooks)
	h := newHookReceiver(t)
	id, revs := webhookFixture(t, nodes[0].URL, h, changes)
	var said string
	waitFor(t, 60*time.Second, "failed attempts and every change queued", func() bool {
		if len(h.all()) < 2 {
			return false
		}
		if q := queued(t, nodes[0].URL, id); q != changes {
			if msg := fmt.Sprintf("%d changes queued; the last attempt lacks revisions %v of %v", q, h.missing(revs), revs); msg != said {
				said = msg
				t.Log(msg)
			}
			return false
		}
		return true
	})
	attempts := h.all()
	from := attempts[len(attempts)-1].node
	var dead *clusterNode
	var alive []*clusterNode
	for _, n := range nodes {
		if n.name == from {
			dead = n
		} else {
			alive = append(alive, n)
		}
	}
	if dead == nil {
		t.Fatalf("attempts came from %q, not a node of the cluster", from)
	}
	killed := time.Now()
	dead.Kill()
	var heir string
	waitFor(t, 90*time.Second, "another node to take over", func() bool {
		for _, a := range h.all() {
			if a.node != "" && a.node != dead.name {
				heir = a.node
				return true
			}
		}
		return false
	})
	t.Logf("%s killed; %s delivered %v later (default FailoverAfter 5s)", dead.name, heir, time.Since(killed).Round(time.Millisecond))
	var ids []string
	for _, a := range h.all() {
		ids = append(ids, fmt.Sprintf("%s:%s", a.node, a.batch))
	}
	t.Logf("attempts (node:batch) %v", ids)
	h.failing.Store(false)
	waitFor(t, 60*time.Second, "every change after the failover", func() bool { return len(h.accepted()) >= changes })
	h.check(t, revs)
	waitFor(t, 15*time.Second, "nothing left queued", func() bool { return queued(t, alive[0].URL, id) == 0 })
}
