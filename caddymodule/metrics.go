package caddymodule

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/appkeys/appkeys/internal/verify"
)

// appCounter is a counter labelled by app alone, as most of ours are.
func appCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"app"})
}

// The collectors are package values, registered into the registry of every
// config load (Caddy makes a new one per load): counts carry over a reload,
// and two sites using the handler register nothing twice.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "appkey_auth_requests_total",
		Help: "Requests checked by appkey_auth, by app, result (allowed, denied, throttled, unavailable, rate_limited, forbidden) and reason.",
	}, []string{"app", "result", "reason"})
	cacheHits = appCounter("appkey_auth_cache_hits_total",
		"Key checks answered from the cache.")
	cacheMisses = appCounter("appkey_auth_cache_misses_total",
		"Key checks that had to ask the key service.")
	cacheEvictions = appCounter("appkey_auth_cache_evictions_total",
		"Cache entries pushed out by the cache's size bound.")
	keyserviceRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "appkey_auth_keyservice_requests_total",
		Help: "Verify calls to the key service, by HTTP status code (\"error\" when no answer arrived, \"invalid\" for a 200 that was no usable answer).",
	}, []string{"app", "code"})
	keyserviceDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "appkey_auth_keyservice_duration_seconds",
		Help:    "Duration of verify calls to the key service.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"app"})
	staleServed = appCounter("appkey_auth_stale_served_total",
		"Cached answers used past their freshness because the key service failed.")
	throttled = appCounter("appkey_auth_throttled_total",
		"Requests refused with 429 because their client address sent too many bad keys.")
	revocationsApplied = appCounter("appkey_auth_revocations_applied_total",
		"Revocations, orphanings and app deletions from the change feed applied to the cache.")
	queuedTotal = appCounter("appkey_auth_keyservice_queued_total",
		"Verify calls that found every slot (max_verify_calls) taken and queued for one.")

	entriesDesc = prometheus.NewDesc("appkey_auth_cache_entries",
		"Entries in the cache, by kind (valid, invalid).", []string{"app", "kind"}, nil)
	lagDesc = prometheus.NewDesc("appkey_auth_events_lag_seconds",
		"How long after it happened the newest change-feed event was applied.", []string{"app"}, nil)
	lastSeqDesc = prometheus.NewDesc("appkey_auth_events_last_seq",
		"Sequence number of the newest change-feed event applied.", []string{"app"}, nil)
	queueWaitingDesc = prometheus.NewDesc("appkey_auth_keyservice_queue_waiting",
		"Verify calls (one per key, however many requests wait for it) queued for a slot (max_verify_calls).", []string{"app"}, nil)

	collectors = []prometheus.Collector{
		requestsTotal, cacheHits, cacheMisses, cacheEvictions, keyserviceRequests,
		keyserviceDuration, staleServed, throttled, revocationsApplied, queuedTotal, stateCollector{},
	}
)

// registerMetrics registers every collector in reg, tolerating those a
// previous Provision with the same registry already registered.
func registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// stateCollector reports the gauges from the live engines and feeds at
// scrape time, summed per app (two configs may use the same app).
type stateCollector struct{}

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entriesDesc
	ch <- lagDesc
	ch <- lastSeqDesc
	ch <- queueWaitingDesc
}

func (stateCollector) Collect(ch chan<- prometheus.Metric) {
	type entries struct{ valid, invalid, waiting int }
	perApp := map[string]entries{}
	engines.Range(func(_, v any) bool {
		s := v.(*pooledEngine)
		st := s.Stats()
		e := perApp[s.app]
		e.valid += st.ValidEntries
		e.invalid += st.InvalidEntries
		e.waiting += st.QueueWaiting
		perApp[s.app] = e
		return true
	})
	for app, e := range perApp {
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(e.valid), app, "valid")
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(e.invalid), app, "invalid")
		ch <- prometheus.MustNewConstMetric(queueWaitingDesc, prometheus.GaugeValue, float64(e.waiting), app)
	}
	type progress struct {
		seq int64
		lag time.Duration
	}
	feedsByApp := map[string]progress{}
	feeds.Range(func(_, v any) bool {
		f := v.(*pooledFeed)
		st := f.feed.Stats()
		p := feedsByApp[f.app]
		p.seq = max(p.seq, st.LastSeq)
		p.lag = max(p.lag, st.Lag)
		feedsByApp[f.app] = p
		return true
	})
	for app, p := range feedsByApp {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, p.lag.Seconds(), app)
		ch <- prometheus.MustNewConstMetric(lastSeqDesc, prometheus.GaugeValue, float64(p.seq), app)
	}
}

// handlerMetrics are one app's request counters, resolved once so that the
// request path does no label lookup.
type handlerMetrics struct {
	allowed, allowedStale, missing, unavailable prometheus.Counter
	unavailableQueued                           prometheus.Counter
	throttled, throttledReq, throttledByService prometheus.Counter
	deniedBy                                    map[verify.Code]prometheus.Counter
	deniedOther                                 prometheus.Counter
	// A valid key refused by its own limits: over its rate_limit, or
	// from outside its allowed_cidrs.
	rateLimited, forbidden prometheus.Counter
}

func newHandlerMetrics(app string) *handlerMetrics {
	m := &handlerMetrics{
		allowed:      requestsTotal.WithLabelValues(app, "allowed", "valid"),
		allowedStale: requestsTotal.WithLabelValues(app, "allowed", "stale"),
		missing:      requestsTotal.WithLabelValues(app, "denied", "missing"),
		unavailable:  requestsTotal.WithLabelValues(app, "unavailable", "keyservice"),
		// Queued behind max_verify_calls until the request gave up.
		unavailableQueued: requestsTotal.WithLabelValues(app, "unavailable", "queue"),
		throttled:         throttled.WithLabelValues(app),
		throttledReq:      requestsTotal.WithLabelValues(app, "throttled", "failed_attempts"),
		// The key service answered 429: the app's budget of failed
		// verifies is spent, and this key was one more failure.
		throttledByService: requestsTotal.WithLabelValues(app, "throttled", "keyservice"),
		deniedOther:        requestsTotal.WithLabelValues(app, "denied", "unknown"),
		deniedBy:           map[verify.Code]prometheus.Counter{},
		rateLimited:        requestsTotal.WithLabelValues(app, "rate_limited", "rate_limit"),
		forbidden:          requestsTotal.WithLabelValues(app, "forbidden", "allowed_cidrs"),
	}
	for _, c := range []verify.Code{verify.CodeMalformed, verify.CodeNotFound, verify.CodeExpired,
		verify.CodeRevoked, verify.CodeOrphaned, verify.CodeWrongApp} {
		m.deniedBy[c] = requestsTotal.WithLabelValues(app, "denied", strings.ToLower(c.String()))
	}
	return m
}

func (m *handlerMetrics) denied(c verify.Code) prometheus.Counter {
	if ctr, ok := m.deniedBy[c]; ok {
		return ctr
	}
	return m.deniedOther
}

// observer feeds one app's engine and feed events into the collectors.
type observer struct {
	app                                   string
	hits, misses, evictions, stale, revoc prometheus.Counter
	queued                                prometheus.Counter
	duration                              prometheus.Observer
}

func newObserver(app string) *observer {
	return &observer{
		app:       app,
		hits:      cacheHits.WithLabelValues(app),
		misses:    cacheMisses.WithLabelValues(app),
		evictions: cacheEvictions.WithLabelValues(app),
		stale:     staleServed.WithLabelValues(app),
		revoc:     revocationsApplied.WithLabelValues(app),
		queued:    queuedTotal.WithLabelValues(app),
		duration:  keyserviceDuration.WithLabelValues(app),
	}
}

func (o *observer) CacheHit()          { o.hits.Inc() }
func (o *observer) CacheMiss()         { o.misses.Inc() }
func (o *observer) CacheEvicted()      { o.evictions.Inc() }
func (o *observer) StaleServed()       { o.stale.Inc() }
func (o *observer) RevocationApplied() { o.revoc.Inc() }
func (o *observer) VerifyQueued()      { o.queued.Inc() }

// KeyServiceCall counts a verify call by its HTTP status: "error" when no
// answer arrived, "invalid" for a 200 that was no usable answer (so that
// code="200" always means the key service answered).
func (o *observer) KeyServiceCall(status int, err error, d time.Duration) {
	var code string
	var ba *verify.BadAnswerError
	switch {
	case status == 0:
		code = "error"
	case errors.As(err, &ba):
		code = "invalid"
	default:
		code = strconv.Itoa(status)
	}
	keyserviceRequests.WithLabelValues(o.app, code).Inc()
	o.duration.Observe(d.Seconds())
}

// EventApplied needs nothing: the lag and sequence gauges are read from
// the feed at scrape time.
func (o *observer) EventApplied(int64, time.Duration) {}

var _ verify.Observer = (*observer)(nil)
