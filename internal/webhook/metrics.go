package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook worker's Prometheus families.
type Metrics struct {
	deliveries *prometheus.CounterVec
	depth      prometheus.Gauge
}

// NewMetrics registers appkeys_webhook_deliveries_total{result} and
// appkeys_webhook_queue_depth in reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appkeys_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result: delivered, failed (to be retried) or gave_up (the endpoint was disabled).",
		}, []string{"result"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "appkeys_webhook_queue_depth",
			Help: "Webhook messages waiting to be delivered, as this replica last counted them.",
		}),
	}
	for _, r := range []string{"delivered", "failed", "gave_up"} {
		m.deliveries.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.depth} {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return nil, err
		}
	}
	return m, nil
}
