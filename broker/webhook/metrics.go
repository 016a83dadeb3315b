package webhook

import "github.com/prometheus/client_golang/prometheus"

var (
	descDelivered = prometheus.NewDesc("presenced_webhook_delivered_total",
		"Changes delivered to the webhook by this node (in batches answered 2xx).", []string{"webhook"}, nil)
	descBatches = prometheus.NewDesc("presenced_webhook_batches_total",
		"Batches delivered to the webhook by this node.", []string{"webhook"}, nil)
	descFailed = prometheus.NewDesc("presenced_webhook_failed_attempts_total",
		"Delivery attempts to the webhook that failed (retried).", []string{"webhook"}, nil)
	descDropped = prometheus.NewDesc("presenced_webhook_dropped_total",
		"Changes for the webhook discarded: the oldest past the queue limit, or queued when it was disabled.", []string{"webhook"}, nil)
	descQueued = prometheus.NewDesc("presenced_webhook_queued",
		"Changes for the webhook not delivered yet, the batch in flight included.", []string{"webhook"}, nil)
)

// Collectors returns the Prometheus collectors of the webhook counters,
// labeled by webhook id, for the caller to register. They read the live
// counters at each scrape; a deleted webhook's series end.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{collector{s}}
}

type collector struct{ s *Service }

var _ prometheus.Collector = collector{}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDelivered
	ch <- descBatches
	ch <- descFailed
	ch <- descDropped
	ch <- descQueued
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.RLock()
	eps := make([]*endpoint, 0, len(c.s.endpoints))
	for _, e := range c.s.endpoints {
		eps = append(eps, e)
	}
	c.s.mu.RUnlock()
	for _, e := range eps {
		st := e.snapshot()
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(st.Delivered), e.id)
		ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(st.Batches), e.id)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(st.FailedAttempts), e.id)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped), e.id)
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(st.Queued), e.id)
	}
}
