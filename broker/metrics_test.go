package broker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/protocol"
)

func scrape(t *testing.T, s *testServer) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestScrapeReadsStatsOnce: the engine's Stats count the sessions of the
// whole cluster under the index's lock, which stops the index applying
// changes meanwhile. A scrape read them once per metric (13 times): with
// 99,500 sessions in a 5-node cluster, scrapes took two thirds of node
// 0's CPU while changes were delivered. One scrape, one read.
func TestScrapeReadsStatsOnce(t *testing.T) {
	var reads atomic.Int32
	broker.SetStatsHook(func() { reads.Add(1) })
	t.Cleanup(func() { broker.SetStatsHook(nil) })
	s := startServer(t, "")
	reads.Store(0)
	m := scrape(t, s)
	if n := reads.Load(); n != 1 {
		t.Errorf("one scrape read the engine's Stats %d times", n)
	}
	for _, want := range []string{"presenced_sessions ", "presenced_subscribers ", "presenced_fanout_window_seconds ",
		"presenced_status_events_total ", "presenced_status_changes_total ", "presenced_stream_entries_applied_total ",
		"presenced_watch_resumes_total ", "presenced_lease_losses_total ", "presenced_nodes_expired_total ",
		"presenced_unavailable_total ", "presenced_deltas_total ", "presenced_batches_total ", "presenced_source_restarts_total "} {
		if !strings.Contains(m, "\n"+want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestMetricsAnSREExpects: requests by route and code, 429s, refused
// credentials, WebSocket closes by code, and status events that count
// status events (not every stream entry).
func TestMetricsAnSREExpects(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) { c.Limits.RESTRate, c.Limits.RESTBurst = 0.1, 20 })
	seedTeam(t, s)
	call(t, "GET", s.URL+"/v1/users", "not-a-token", nil, nil)
	for i := 0; call(t, "GET", s.URL+"/v1/users/a", s.Admin, nil, nil) != http.StatusTooManyRequests; i++ {
		if i == 30 {
			t.Fatal("never rate limited")
		}
	}
	c := mustDial(t, s, userJWT(t, "a", time.Hour))
	_ = c.c.Close(4000+1, "bye")
	for deadline := time.Now().Add(5 * time.Second); ; {
		if strings.Contains(scrape(t, s), `presenced_websocket_closes_total{by="client",code="4001"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client's close was not counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Engine().SetManual(t.Context(), "a", presence.Manual{Status: protocol.StatusBusy}); err != nil {
		t.Fatal(err) // a status change that is no backend status event
	}
	ev, err := s.Engine().Publish(t.Context(), presence.Event{User: "b", Status: protocol.StatusBusy, Source: "phone"})
	if err != nil || ev == 0 {
		t.Fatal(err)
	}
	m := scrape(t, s)
	for _, want := range []string{
		`presenced_http_requests_total{code="200",route="GET /v1/users/{id}"}`,
		`presenced_http_requests_total{code="429",route="GET /v1/users/{id}"}`,
		`presenced_http_requests_total{code="401",route="GET /v1/users"}`,
		`presenced_http_request_duration_seconds_bucket{route="GET /v1/ws"`,
		`presenced_rate_limited_total{api="rest"} 1`,
		`presenced_auth_failures_total{api="rest"} 1`,
		`presenced_websocket_closes_total{by="client",code="4001"} 1`,
		"presenced_status_events_total 1\n",
		"presenced_status_changes_total",
		"presenced_stream_entries_applied_total",
		"presenced_watch_resumes_total 0\n",
		"presenced_lease_losses_total 0\n",
		"presenced_nodes_expired_total 0\n",
		"presenced_source_restarts_total 0\n",
		"presenced_presence_available 1\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestGrafanaDashboardUsesRealMetrics: every metric the Grafana dashboard
// in deploy/ queries is one the server exports.
func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/presenced.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "", func(c *broker.Config) { c.WebhookAllowPrivate = true })
	seedTeam(t, s)
	// Give every labelled metric a series: a refused request, a closed
	// WebSocket, a registered webhook.
	call(t, "GET", s.URL+"/v1/users", "not-a-token", nil, nil)
	c := mustDial(t, s, userJWT(t, "a", time.Hour))
	_ = c.c.Close(4001, "bye")
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer receiver.Close()
	call(t, "POST", s.URL+"/v1/webhooks", s.Admin, map[string]any{"url": receiver.URL}, nil)
	var exported string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		exported = scrape(t, s)
		if strings.Contains(exported, "presenced_websocket_closes_total{") && strings.Contains(exported, "presenced_webhook_queued") ||
			time.Now().After(deadline) {
			break
		}
	}
	name := regexp.MustCompile(`presenced_[a-z_]+`)
	seen := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				seen++
				base := strings.TrimSuffix(m, "_bucket")
				if !strings.Contains(exported, "# TYPE "+base+" ") {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, m)
				}
			}
		}
	}
	if seen < 20 {
		t.Fatalf("only %d metric references in the dashboard", seen)
	}
}
