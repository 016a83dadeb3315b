package broker

import (
	"net/http"
	"time"

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
	m.reg.MustRegister(m.connections, m.subscriptions, m.framesOut, m.deltasOut, m.slowConsumers, m.fanout,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
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
	stats := func() presence.Stats {
		if s.engine == nil {
			return presence.Stats{}
		}
		return s.engine.Stats()
	}
	gauge("presenced_sessions", "Sessions (connections and backend sources) in the presence index.", func() float64 { return float64(stats().Sessions) })
	gauge("presenced_subscribers", "Presence subscribers on this node.", func() float64 { return float64(stats().Subscribers) })
	counter("presenced_status_events_total", "Presence events applied from the stream.", func() float64 { return float64(stats().EventsApplied) })
	counter("presenced_deltas_total", "Member changes computed for groups.", func() float64 { return float64(stats().DeltasOut) })
	counter("presenced_batches_total", "Coalesced batches handed to subscribers.", func() float64 { return float64(stats().BatchesOut) })
	counter("presenced_source_restarts_total", "Times this node made the presence stream's leader step down because membership was not being sourced.",
		func() float64 { return float64(stats().SourceKicks) })
	gauge("presenced_revision", "Last presence revision applied.", func() float64 {
		if s.engine == nil {
			return 0
		}
		return float64(s.engine.Rev())
	})
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}
