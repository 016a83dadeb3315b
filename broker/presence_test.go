package broker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPresenceREST drives the native presence API the way a backend does:
// status events one at a time and in batches, then every read.
func TestPresenceREST(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	before := time.Now().UTC().Format(time.RFC3339Nano)

	var one struct {
		OK  bool
		Rev uint64
	}
	if st := call(t, "POST", s.URL+"/v1/presence/status", s.Admin,
		map[string]any{"user": "a", "status": "busy", "text": "on a call", "source": "pbx"}, &one); st != 200 || !one.OK || one.Rev == 0 {
		t.Fatalf("publish: %d %+v", st, one)
	}

	var batch struct {
		Results []struct {
			OK    bool
			Rev   uint64
			Error struct{ Code, Message string }
		}
	}
	st := call(t, "POST", s.URL+"/v1/presence/status/batch", s.Admin, map[string]any{"events": []map[string]any{
		{"user": "b", "status": "away", "source": "crm", "text": "lunch"},
		{"user": "nobody", "status": "online", "source": "crm"},
		{"user": "c", "status": "napping", "source": "crm"},
		{"user": "a", "status": "offline", "source": "pbx"},
		{"user": "c", "status": "online", "source": "crm", "ttl": 60},
	}}, &batch)
	if st != 200 || len(batch.Results) != 5 {
		t.Fatalf("batch: %d %+v", st, batch)
	}
	for i, want := range []string{"", "not_found", "bad_request", "", ""} {
		r := batch.Results[i]
		if r.Error.Code != want || r.OK != (want == "") || (want == "" && r.Rev <= one.Rev) || (want != "" && r.Error.Message == "") {
			t.Errorf("event %d: %+v, want error %q", i, r, want)
		}
	}
	if batch.Results[3].Rev <= batch.Results[0].Rev || batch.Results[4].Rev <= batch.Results[3].Rev {
		t.Fatalf("revisions not in batch order: %+v", batch.Results)
	}

	// Reads see the last word of the batch.
	waitRev(t, s, batch.Results[4].Rev)
	var users struct {
		Users []struct{ User, Status, Text string }
		Rev   uint64
	}
	if st := call(t, "GET", s.URL+"/v1/presence/users?ids=a,b&ids=c", s.Admin, nil, &users); st != 200 || len(users.Users) != 3 {
		t.Fatalf("users: %d %+v", st, users)
	}
	got := fmt.Sprint(users.Users)
	if want := "[{a offline } {b away lunch} {c online }]"; got != want {
		t.Fatalf("users = %s, want %s", got, want)
	}
	var snap struct {
		Op      string
		Group   string
		Online  int
		Total   int
		Members []struct{ User, Status string }
	}
	if st := call(t, "GET", s.URL+"/v1/presence/groups/team", s.Admin, nil, &snap); st != 200 || snap.Total != 2 || snap.Online != 1 ||
		len(snap.Members) != 1 || snap.Members[0].User != "b" {
		t.Fatalf("group snapshot: %d %+v", st, snap)
	}
	var where struct{ Groups []string }
	if st := call(t, "GET", s.URL+"/v1/presence/users/b/groups", s.Admin, nil, &where); st != 200 || fmt.Sprint(where.Groups) != "[team]" {
		t.Fatalf("where now: %d %+v", st, where)
	}
	var changed struct{ Users []struct{ User string } }
	if st := call(t, "GET", s.URL+"/v1/presence/changes?since="+before, s.Admin, nil, &changed); st != 200 || len(changed.Users) != 3 {
		t.Fatalf("changes since %s: %d %+v", before, st, changed)
	}

	// Whole-request errors.
	for _, c := range []struct {
		path, body string
		status     int
	}{
		{"/v1/presence/status/batch", `{}`, 400},
		{"/v1/presence/status/batch", `{"events":{}}`, 400},
		{"/v1/presence/status/batch", `{"events":[],"extra":1}`, 400},
		{"/v1/presence/status/batch", `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"user":"a","status":"online","source":"s"},`, 1001), ",") + `]}`, 400},
		{"/v1/presence/status", `{"user":"nobody","status":"online","source":"s"}`, 404},
		{"/v1/presence/status", `{"user":"a","status":"napping","source":"s"}`, 400},
	} {
		var e struct {
			Error struct{ Code, Message string }
		}
		if st := call(t, "POST", s.URL+c.path, s.Admin, c.body, &e); st != c.status || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("%s %.60s: %d %+v, want %d", c.path, c.body, st, e, c.status)
		}
	}
	// An empty batch is a batch.
	if st := call(t, "POST", s.URL+"/v1/presence/status/batch", s.Admin, `{"events":[]}`, &batch); st != 200 || len(batch.Results) != 0 {
		t.Fatalf("empty batch: %d %+v", st, batch)
	}
}

// waitRev waits until the node's engine applied rev.
func waitRev(t *testing.T, s *testServer, rev uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.Engine().Rev() < rev; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("engine at rev %d, want %d", s.Engine().Rev(), rev)
		}
	}
}
