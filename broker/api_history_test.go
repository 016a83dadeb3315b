package broker_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
)

type historyAnswer struct {
	Group   string
	Step    string
	From    time.Time
	To      time.Time
	Samples []struct {
		T      time.Time
		Online int
	}
	Peak struct {
		Day    string
		Online int
		At     *time.Time
	}
}

// TestCountsHistory reads the online history of the server and of a
// group while a user comes online, and every kind of bad request. Every
// answer is checked against the OpenAPI document.
func TestCountsHistory(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) { c.HistoryPeriod = 100 * time.Millisecond })
	seedTeam(t, s)
	base := s.URL + "/v1/presence/counts/history"

	// last waits until the newest sample of q says online.
	last := func(q string, online int) historyAnswer {
		t.Helper()
		var h historyAnswer
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			h = historyAnswer{}
			if st := call(t, "GET", base+q, s.Admin, nil, &h); st != http.StatusOK {
				t.Fatalf("GET %s: %d", q, st)
			}
			if n := len(h.Samples); n > 0 && h.Samples[n-1].Online == online {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: no sample with %d online in 20s: %+v", q, online, h)
			}
		}
	}
	h := last("", 0)
	if h.Group != "" || h.Step != "100ms" || h.Peak.Online != 0 || h.Peak.At == nil || h.Peak.Day != time.Now().UTC().Format(time.DateOnly) {
		t.Errorf("before anyone is online: %+v", h)
	}

	if st := call(t, "POST", s.URL+"/v1/presence/status", s.Admin,
		map[string]any{"user": "a", "status": "online", "source": "test"}, nil); st != http.StatusOK {
		t.Fatalf("publish: %d", st)
	}
	h = last("", 1)
	if h.Peak.Online != 1 {
		t.Errorf("server peak %+v, want 1", h.Peak)
	}
	from := url.QueryEscape(time.Now().Add(-time.Minute).Format(time.RFC3339))
	g := last("?group=team&from="+from, 1)
	if g.Group != "team" || g.Step != "100ms" || g.Peak.Online != 1 || g.From.Before(time.Now().Add(-2*time.Minute)) {
		t.Errorf("group: %+v", g)
	}
	for i := 1; i < len(g.Samples); i++ {
		if !g.Samples[i].T.After(g.Samples[i-1].T) {
			t.Fatalf("samples out of order: %+v", g.Samples)
		}
	}
	// The coarse samples: six fine periods each.
	c := last("?group=team&step=600ms", 1)
	if c.Step != "600ms" {
		t.Errorf("coarse step %q", c.Step)
	}
	// From longer ago than the fine samples are kept: the coarse step.
	old := url.QueryEscape(time.Now().Add(-3 * time.Hour).Format(time.RFC3339))
	if call(t, "GET", base+"?from="+old, s.Admin, nil, &h); h.Step != "600ms" {
		t.Errorf("from three hours ago: step %q", h.Step)
	}

	future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"?from=yesterday", http.StatusBadRequest},
		{"?from=" + future, http.StatusBadRequest},
		{"?step=10s", http.StatusBadRequest},
		{"?step=fast", http.StatusBadRequest},
		{"?group=no%20such", http.StatusBadRequest},
		{"?group=team&group=other", http.StatusBadRequest},
		{"?group=nosuch", http.StatusNotFound},
	} {
		var e apiErr
		if st := call(t, "GET", base+tc.query, s.Admin, nil, &e); st != tc.code || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("GET %s: %d %+v, want %d", tc.query, st, e, tc.code)
		}
	}
	if st := call(t, "GET", base, "", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("without a token: %d", st)
	}
}
