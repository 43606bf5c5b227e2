package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// feedCollector reports the change feed's counters as the service keeps
// them: what a revocation costs in store reads, and the long-polls waiting.
type feedCollector struct{ svc *keyservice.Service }

var (
	feedReadsDesc = prometheus.NewDesc("appkeys_feed_store_reads_total",
		"Store reads made by the change feed, by what made them: subscriber (one long-poll reading its own app's events), head (a new subscriber asking for the head), follow (the replica following the feed for every subscriber at once).",
		[]string{"read"}, nil)
	feedReconnectsDesc = prometheus.NewDesc("appkeys_feed_listen_reconnects_total",
		"Times the PostgreSQL LISTEN connection that wakes this replica's long-polls was lost and opened again.", nil, nil)
	feedWakeupsDesc = prometheus.NewDesc("appkeys_feed_wakeups_total",
		"Long-polls of the change feed woken to look at new events (an event of their app, or the feed starting over).", nil, nil)
	feedWaitingDesc = prometheus.NewDesc("appkeys_feed_waiting",
		"Long-polls of the change feed waiting on this replica now.", nil, nil)
)

func (c *feedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- feedReadsDesc
	ch <- feedReconnectsDesc
	ch <- feedWakeupsDesc
	ch <- feedWaitingDesc
}

func (c *feedCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.svc.FeedStats()
	for read, n := range st.StoreReads {
		ch <- prometheus.MustNewConstMetric(feedReadsDesc, prometheus.CounterValue, float64(n), read)
	}
	ch <- prometheus.MustNewConstMetric(feedReconnectsDesc, prometheus.CounterValue, float64(st.ListenReconnects))
	ch <- prometheus.MustNewConstMetric(feedWakeupsDesc, prometheus.CounterValue, float64(st.Wakeups))
	ch <- prometheus.MustNewConstMetric(feedWaitingDesc, prometheus.GaugeValue, float64(st.Waiting))
}
