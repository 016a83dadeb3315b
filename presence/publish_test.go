package presence

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/protocol"
)

func TestBackendSubject(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	b := v.engine("b") // both serve the queue group: each request once
	request := func(body string) PublishReply {
		t.Helper()
		m, err := v.nc.Request(SubjectPublish, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r PublishReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("reply %q: %v", m.Data, err)
		}
		return r
	}

	r := request(`{"user":"u","status":"busy","text":"on a call","source":"pbx","ttl":60}`)
	if !r.OK || r.Rev == 0 || r.Error != nil {
		t.Fatalf("reply = %+v", r)
	}
	for _, e := range []*Engine{a, b} { // both hold the expiry before time moves
		if err := e.WaitRev(ctxT(t), r.Rev); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.Status("u"); st.Status != protocol.StatusBusy || st.Text != "on a call" {
		t.Fatalf("status after publish = %+v", st)
	}
	// The TTL counts from the event.
	v.clock.Advance(61 * time.Second)
	waitStatus(t, a, "u", protocol.StatusOffline)

	r = request(`{"user":"u","status":"online","source":"crm"}`)
	if !r.OK {
		t.Fatalf("reply = %+v", r)
	}
	waitStatus(t, a, "u", protocol.StatusOnline)
	r = request(`{"user":"u","status":"offline","source":"crm"}`)
	if !r.OK {
		t.Fatalf("reply = %+v", r)
	}
	waitStatus(t, a, "u", protocol.StatusOffline)

	for _, bad := range []string{
		`not json`,
		`{"user":"u","status":"online"}`,
		`{"user":"","status":"online","source":"s"}`,
		`{"user":"u","status":"napping","source":"s"}`,
		`{"user":"u","status":"online","source":"s","ttl":-1}`,
		`{"user":"u","status":"online","source":"s","ttl":1e9}`,
		`{"user":"u","status":"online","source":"a.b"}`,
	} {
		r := request(bad)
		if r.OK || r.Error == nil || r.Error.Code != CodeBadRequest || r.Error.Message == "" {
			t.Errorf("%s: reply = %+v, want bad_request", bad, r)
		}
	}
	// A raw reply has exactly the documented shape.
	m, err := v.nc.Request(SubjectPublish, []byte(`{}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]map[string]string
	if err := json.Unmarshal(m.Data, &raw); err != nil || raw["error"]["code"] != "bad_request" {
		t.Fatalf("raw error reply %s", m.Data)
	}
}

// TestAutoAway lets time pass with v.pass, which waits after every step for
// the auto-away scan to sleep again: a bare clock jump could land before
// the scan had set its next timer, which then never fell due.
func TestAutoAway(t *testing.T) {
	v := newEnv(t)
	v.addMember("g", "u")
	cfg := v.config("a")
	cfg.AutoAway = 8 * time.Second // scanned every 2s
	a := v.start(cfg)
	ctx := ctxT(t)
	s, err := a.Connect(ctx, SessionInfo{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOnline)
	v.pass(6*time.Second, a)
	s.Touch()
	v.pass(4*time.Second, a) // 10s after connect, 4s after activity
	if st := a.Status("u").Status; st != protocol.StatusOnline {
		t.Fatalf("active session: %s", st)
	}
	v.pass(6*time.Second, a) // 10s after activity: at least one scan past 8s
	waitStatus(t, a, "u", protocol.StatusAway)
	s.Touch()
	waitStatus(t, a, "u", protocol.StatusOnline)
	if d := groupDeltas(a, "g"); len(d) != 3 {
		t.Fatalf("deltas = %+v, want online, away, online", d)
	}
	// A session set to busy by hand does not go away.
	if err := s.SetStatus(ctx, protocol.StatusBusy, ""); err != nil {
		t.Fatal(err)
	}
	v.pass(20*time.Second, a)
	if st := a.Status("u").Status; st != protocol.StatusBusy {
		t.Fatalf("idle busy session: %s", st)
	}
}

func TestLostLeaseIsTakenBack(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	ctx := ctxT(t)
	s, err := a.Connect(ctx, SessionInfo{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOnline)
	// Another node decided a was dead (a long pause) and deleted its lease
	// and sessions.
	kv, err := v.js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, leaseKey("a")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, sessionKey("u", s.ID())); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusOffline)
	v.clock.Advance(2 * time.Second) // the next refresh notices
	waitStatus(t, a, "u", protocol.StatusOnline)
	a.x.mu.RLock()
	_, leased := a.x.leases["a"]
	a.x.mu.RUnlock()
	if !leased {
		t.Fatal("lease not taken back")
	}
	if err := s.SetStatus(ctx, protocol.StatusAway, "back"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "u", protocol.StatusAway)
}

func TestRecreatedStreamIsAFault(t *testing.T) {
	v := newEnv(t)
	a := v.engine("a")
	ctx := ctxT(t)
	for _, u := range []string{"u1", "u2", "u3"} {
		if _, err := a.Connect(ctx, SessionInfo{User: u}); err != nil {
			t.Fatal(err)
		}
	}
	v.sync(a)
	if err := a.Err(); err != nil {
		t.Fatalf("Err before = %v", err)
	}
	// Every server lost the memory stream; something recreated it.
	if err := v.js.DeleteKeyValue(ctx, DefaultBucket); err != nil {
		t.Fatal(err)
	}
	if _, err := v.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: DefaultBucket, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(2 * time.Second) // the lease refresh finds out
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for a.Err() == nil {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("a recreated stream went unnoticed")
		}
	}
}

func TestBackendSubjectBatch(t *testing.T) {
	v := newEnv(t)
	e := v.engine("a")
	m, err := v.nc.Request(SubjectPublish, []byte(` [
		{"user":"u1","status":"busy","text":"on a call","source":"pbx"},
		{"user":"u2","status":"napping","source":"pbx"},
		{"user":"u3","status":"away","source":"pbx","ttl":-1},
		{"user":"u4","status":"online","source":"crm"},
		{"user":"u4","status":"offline","source":"crm"}
	]`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rs []PublishReply
	if err := json.Unmarshal(m.Data, &rs); err != nil {
		t.Fatalf("reply %s: %v", m.Data, err)
	}
	if len(rs) != 5 {
		t.Fatalf("%d replies to 5 events: %s", len(rs), m.Data)
	}
	for i, bad := range []bool{false, true, true, false, false} {
		if bad != (rs[i].Error != nil) || bad == rs[i].OK || (bad && rs[i].Error.Code != CodeBadRequest) {
			t.Errorf("event %d: reply %+v", i, rs[i])
		}
	}
	if rs[0].Rev == 0 || rs[4].Rev <= rs[3].Rev || rs[3].Rev <= rs[0].Rev {
		t.Fatalf("revisions out of order: %s", m.Data)
	}
	if err := e.WaitRev(ctxT(t), rs[4].Rev); err != nil {
		t.Fatal(err)
	}
	if st := e.Status("u1"); st.Status != protocol.StatusBusy || st.Text != "on a call" {
		t.Fatalf("u1 = %+v", st)
	}
	if st := e.Status("u4"); st.Status != protocol.StatusOffline {
		t.Fatalf("u4 = %+v, want offline (the batch's last word)", st)
	}

	for _, bad := range []string{`[1, 2]`, `[{"user":"u"}`, "[" + strings.Repeat(`{},`, MaxBatch) + `{}]`} {
		m, err := v.nc.Request(SubjectPublish, []byte(bad), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r PublishReply
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Error == nil || r.Error.Code != CodeBadRequest {
			t.Errorf("%.40s: reply %s, want one bad_request", bad, m.Data)
		}
	}
}

// BenchmarkPublishBatch measures ingest through the engine: batches of 500
// events over 1,000 users, pipelined to JetStream, until every event has
// been applied to the index. Reported: events/s.
func BenchmarkPublishBatch(b *testing.B) {
	v := newEnv(b)
	e := v.engine("a")
	evs := make([]Event, 500)
	statuses := []protocol.Status{protocol.StatusOnline, protocol.StatusAway, protocol.StatusBusy}
	var last uint64
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n++ {
		for i := range evs {
			k := n*len(evs) + i
			evs[i] = Event{User: "u" + strconv.Itoa(k%1000), Source: "bench", Status: statuses[k%3]}
		}
		res, err := e.PublishBatch(context.Background(), evs)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		last = res[len(res)-1].Rev
	}
	if err := e.WaitRev(context.Background(), last); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*len(evs))/time.Since(start).Seconds(), "events/s")
}
