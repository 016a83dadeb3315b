package broker

import (
	"bufio"
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the node's Prometheus metrics, on a registry of its own so
// that several servers can run in one process (tests, benchmarks).
type metrics struct {
	reg           *prometheus.Registry
	connections   prometheus.Gauge
	subscriptions prometheus.Counter
	framesOut     prometheus.Counter
	deltasOut     prometheus.Counter
	slowConsumers prometheus.Counter
	fanout        prometheus.Histogram
	// By label.
	requests     *prometheus.CounterVec   // route, code
	latency      *prometheus.HistogramVec // route
	rateLimited  *prometheus.CounterVec   // api
	authFailures *prometheus.CounterVec   // api
	wsCloses     *prometheus.CounterVec   // code, by
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_websocket_connections", Help: "Open WebSocket connections."}),
		subscriptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_subscribe_ops_total", Help: "Group subscriptions made over WebSockets."}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_frames_out_total", Help: "WebSocket frames written."}),
		deltasOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_deltas_out_total", Help: "Member changes delivered over WebSockets."}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_slow_consumers_total", Help: "WebSockets cut because their queue overflowed."}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_fanout_latency_seconds",
			Help:    "Time from a status change being stored to its delta being written to a WebSocket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_http_requests_total", Help: "HTTP requests answered, by route (the pattern of routes.go) and status code."},
		[]string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "presenced_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route (for WebSockets: the handshake).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
		[]string{"route"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_rate_limited_total", Help: "Requests (REST) and ops (WebSocket) refused for going over their rate."},
		[]string{"api"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_auth_failures_total", Help: "Credentials refused: missing, unknown, expired or revoked, by API."},
		[]string{"api"})
	m.wsCloses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_websocket_closes_total", Help: "WebSockets closed, by close code and by who closed (server or client)."},
		[]string{"code", "by"})
	m.reg.MustRegister(m.connections, m.subscriptions, m.framesOut, m.deltasOut, m.slowConsumers, m.fanout,
		m.requests, m.latency, m.rateLimited, m.authFailures, m.wsCloses,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// instrument counts the requests of one route by status code and times
// them.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	latency := m.latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		latency.Observe(time.Since(start).Seconds())
	})
}

// statusRecorder notes the status a handler answers. It hands on what the
// handlers use of the writer: Hijack (WebSockets) directly, the rest
// (Flush, full duplex, deadlines) through Unwrap for
// http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.code = http.StatusSwitchingProtocols
	}
	return c, brw, err
}

// observeFanout records the delivery latency of a batch's newest change.
// A change's Since is the server time of the event that caused it.
func (m *metrics) observeFanout(b presence.Batch) {
	if len(b.Changes) == 0 {
		return
	}
	d := b.Changes[len(b.Changes)-1]
	if d.Since.IsZero() {
		return
	}
	if lat := time.Since(d.Since); lat >= 0 && lat < time.Minute {
		m.fanout.Observe(lat.Seconds())
	}
}

// registerMetrics exports the presence engine's counters, NATS's health
// and the webhooks' counters.
func (s *Server) registerMetrics() {
	m := s.metrics
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	m.reg.MustRegister(s.hooks.Collectors()...)
	gauge("presenced_http_connections", "Open HTTP and WebSocket connections (see --max-connections).", func() float64 {
		if s.limit == nil {
			return 0
		}
		return float64(s.limit.active.Load())
	})
	counter("presenced_connections_refused_total", "Connections answered 503 and closed because --max-connections were open.", func() float64 {
		if s.limit == nil {
			return 0
		}
		return float64(s.limit.refused.Load())
	})
	gauge("presenced_nats_connected", "1 while the node's NATS connection is up.", func() float64 {
		if s.nc != nil && s.nc.IsConnected() {
			return 1
		}
		return 0
	})
	gauge("presenced_ready", "1 while the node is ready (NATS, JetStream and indexes).", func() float64 {
		if s.isReady.Load() {
			return 1
		}
		return 0
	})
	// The engine's Stats count the cluster's sessions under the index's
	// lock: one read per scrape, not one per metric.
	sc := &statsCollector{read: s.engineStats}
	sc.gauge("presenced_sessions", "Sessions (connections and backend sources) in the presence index.", func(st presence.Stats) float64 { return float64(st.Sessions) })
	sc.gauge("presenced_subscribers", "Presence subscribers on this node.", func(st presence.Stats) float64 { return float64(st.Subscribers) })
	sc.gauge("presenced_fanout_window_seconds", "The coalescing window open now: --coalesce, or wider after a flush that queued many batches (--fanout-budget); 0 when none is open.", func(st presence.Stats) float64 { return st.FanoutWindow.Seconds() })
	sc.counter("presenced_status_events_total", "Backend status events this node stored (REST and NATS publishes).", func(st presence.Stats) float64 { return float64(st.StatusEvents) })
	sc.counter("presenced_status_changes_total", "Changes of a user's status or text applied by this node (the same on every node).", func(st presence.Stats) float64 { return float64(st.StatusChanges) })
	sc.counter("presenced_stream_entries_applied_total", "Entries of the presence stream applied to this node's index.", func(st presence.Stats) float64 { return float64(st.EventsApplied) })
	sc.counter("presenced_watch_resumes_total", "Watches of the presence and membership buckets resumed after they stalled or ended.", func(st presence.Stats) float64 {
		n := float64(st.WatchResumes)
		if s.store != nil {
			n += float64(s.store.Resumes())
		}
		return n
	})
	sc.counter("presenced_lease_losses_total", "Times this node found its own lease gone (deemed dead) and took it back.", func(st presence.Stats) float64 { return float64(st.LeasesLost) })
	sc.counter("presenced_orphaned_sessions_deleted_total", "Sessions this node had stored and no longer held open (their close was not written) that it deleted.", func(st presence.Stats) float64 { return float64(st.OrphansDeleted) })
	sc.counter("presenced_nodes_expired_total", "Other nodes' leases this node deleted: their users went offline.", func(st presence.Stats) float64 { return float64(st.NodesExpired) })
	sc.counter("presenced_unavailable_total", "Times this node became unavailable, cut off from its store.", func(st presence.Stats) float64 { return float64(st.Unavailable) })
	sc.counter("presenced_deltas_total", "Member changes computed for groups.", func(st presence.Stats) float64 { return float64(st.DeltasOut) })
	sc.counter("presenced_batches_total", "Coalesced batches handed to subscribers.", func(st presence.Stats) float64 { return float64(st.BatchesOut) })
	sc.counter("presenced_source_restarts_total", "Times this node made the presence stream's leader step down because membership was not being sourced.",
		func(st presence.Stats) float64 { return float64(st.SourceKicks) })
	m.reg.MustRegister(sc)
	gauge("presenced_presence_available", "1 while this node can serve presence, 0 while it is cut off from its store.", func() float64 {
		if s.unavailable() == nil {
			return 1
		}
		return 0
	})
	gauge("presenced_revision", "Last presence revision applied.", func() float64 {
		if s.engine == nil {
			return 0
		}
		return float64(s.engine.Rev())
	})
}

// metricsAuth requires --metrics-token, when one is set, as a bearer
// token: the metrics name groups and nodes.
func (s *Server) metricsAuth(h http.Handler) http.Handler {
	if s.cfg.MetricsToken == "" {
		return h
	}
	want := []byte(s.cfg.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(bearer(r)), want) != 1 {
			s.writeError(w, r, membership.ErrUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}

// engineStats are the engine's Stats, zero before it runs.
func (s *Server) engineStats() presence.Stats {
	if testHookStats != nil {
		testHookStats()
	}
	if s.engine == nil {
		return presence.Stats{}
	}
	return s.engine.Stats()
}

// testHookStats, set by tests only, runs whenever a scrape reads the
// engine's Stats.
var testHookStats func()

// statsCollector exports metrics computed from one read of the engine's
// Stats per scrape.
type statsCollector struct {
	read    func() presence.Stats
	metrics []statsMetric
}

type statsMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(presence.Stats) float64
}

func (c *statsCollector) gauge(name, help string, f func(presence.Stats) float64) {
	c.metrics = append(c.metrics, statsMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, f})
}

func (c *statsCollector) counter(name, help string, f func(presence.Stats) float64) {
	c.metrics = append(c.metrics, statsMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, f})
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.read()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st))
	}
}
