package webhook

import "github.com/prometheus/client_golang/prometheus"

var (
	descDelivered = prometheus.NewDesc("presenced_webhook_delivered_total",
		"Changes delivered to the webhook by this node (in batches answered 2xx).", []string{"webhook"}, nil)
	descBatches = prometheus.NewDesc("presenced_webhook_batches_total",
		"Batches delivered to the webhook by this node.", []string{"webhook"}, nil)
	descFailed = prometheus.NewDesc("presenced_webhook_failed_attempts_total",
		"Delivery attempts to the webhook by this node that failed (retried).", []string{"webhook"}, nil)
	descDropped = prometheus.NewDesc("presenced_webhook_dropped_total",
		"Changes for the webhook that aged out of the change stream before delivery, as this node saw them (webhooks without a users filter).", []string{"webhook"}, nil)
	descQueued = prometheus.NewDesc("presenced_webhook_queued",
		"Changes for the webhook not delivered yet, the batch in flight included; 0 on the nodes not delivering it.", []string{"webhook"}, nil)
	descDelivering = prometheus.NewDesc("presenced_webhook_delivering",
		"1 on the node that delivers the webhook now, else 0.", []string{"webhook"}, nil)
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
	ch <- descDelivering
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.RLock()
	ws := make([]*worker, 0, len(c.s.workers))
	for _, w := range c.s.workers {
		ws = append(ws, w)
	}
	c.s.mu.RUnlock()
	for _, e := range ws {
		st := e.snapshot()
		delivering := 0.0
		if st.Delivering {
			delivering = 1
		}
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(st.Delivered), e.id)
		ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(st.Batches), e.id)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(st.FailedAttempts), e.id)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped), e.id)
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(st.Queued), e.id)
		ch <- prometheus.MustNewConstMetric(descDelivering, prometheus.GaugeValue, delivering, e.id)
	}
}
