package httpapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/appkeys/appkeys/internal/keyservice"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	verifyResults *prometheus.CounterVec
	// verifyThrottled is the one count of verifies refused with 429; the
	// route's 429s in appkeys_http_requests_total are the same requests
	// seen as HTTP, kept because every route has that series.
	verifyThrottled prometheus.Counter
	// usageReports counts the sidecars' usage reports taken; usageIgnored
	// their entries for keys not of the reporting app.
	usageReports, usageIgnored prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, svc *keyservice.Service) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appkeys_http_requests_total",
			Help: "HTTP requests served by the key service, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "appkeys_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route (long-polls included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30, 60},
		}, []string{"route"}),
		verifyResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appkeys_verify_results_total",
			Help: "Answers to verify calls, by code.",
		}, []string{"code"}),
		verifyThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appkeys_verify_throttled_total",
			Help: "Verify calls refused with 429 because the app's budget of failed verifications was spent.",
		}),
		usageReports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appkeys_usage_reports_total",
			Help: "Usage reports taken from sidecars (POST /v1/usage).",
		}),
		usageIgnored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appkeys_usage_ignored_entries_total",
			Help: "Entries of usage reports left out because their key is not one of the reporting app's (another app's, another organization's, or none).",
		}),
	}
	for _, c := range []string{keyservice.CodeValid, keyservice.CodeMalformed, keyservice.CodeNotFound, keyservice.CodeExpired,
		keyservice.CodeRevoked, keyservice.CodeOrphaned, keyservice.CodeWrongApp} {
		m.verifyResults.WithLabelValues(c)
	}
	reg.MustRegister(m.requests, m.duration, m.verifyResults, m.verifyThrottled, m.usageReports, m.usageIgnored, &keysCollector{svc: svc}, &feedCollector{svc: svc},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeRequest(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// keysCollector reports the keys by state as the service last counted
// them: a scrape never reads the keys table (see keyservice.KeyCounts).
type keysCollector struct{ svc *keyservice.Service }

var keysDesc = prometheus.NewDesc("appkeys_keys",
	"Keys that are not revoked, by state, as counted at most 30 seconds ago (on this replica's schedule).", []string{"state"}, nil)

var expiringDesc = prometheus.NewDesc("appkeys_keys_expiring",
	"Active keys (not revoked, orphaned or expired) that expire within the window the within label gives, counted with appkeys_keys.",
	nil, prometheus.Labels{"within": keyservice.ExpiringSoonLabel})

func (c *keysCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keysDesc; ch <- expiringDesc }

func (c *keysCollector) Collect(ch chan<- prometheus.Metric) {
	counts, ok := c.svc.KeyCounts()
	if !ok {
		return // not counted yet: no number rather than a wrong one
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(n), state)
	}
	if n, ok := c.svc.ExpiringKeyCount(); ok {
		ch <- prometheus.MustNewConstMetric(expiringDesc, prometheus.GaugeValue, float64(n))
	}
}

// StoreObserver returns a function for store.Store.SetObserver that records
// store latency into reg.
func StoreObserver(reg prometheus.Registerer) func(op string, d time.Duration) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "appkeys_store_duration_seconds",
		Help:    "Time spent in the store, by operation.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"op"})
	reg.MustRegister(h)
	return func(op string, d time.Duration) { h.WithLabelValues(op).Observe(d.Seconds()) }
}
