package httpapi_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

func TestProbes(t *testing.T) {
	w := newWorld(t)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		r := w.do("GET", path, "", nil).WantStatus(http.StatusOK)
		if got := r.JSON()["status"]; got != want {
			t.Errorf("GET %s: %s", path, r.Body)
		}
	}
	// Probes need no token and ignore a bad one.
	w.do("GET", "/healthz", "aku_wrong", nil).WantStatus(http.StatusOK)

	// Readiness follows the store.
	must(t, w.svc.Server.Store.Close())
	w.do("GET", "/readyz", "", nil).WantError(http.StatusServiceUnavailable, "unavailable")
	w.do("GET", "/healthz", "", nil).WantStatus(http.StatusOK)
}

func TestMetrics(t *testing.T) {
	w := newWorld(t, servicetest.WithConfig(func(c *keyserver.Config) { c.KeyCountEvery = 10 * time.Millisecond }))
	k := w.createKey(w.owner, w.appA.ID, "m1")
	k2 := w.createKey(w.owner, w.appA.ID, "m2")
	must(t, w.owner.RevokeKey(ctx(t), k2.ID))
	w.createKey(w.member, w.appB.ID, "m3")
	must(t, w.owner.DeleteUser(ctx(t), w.memberID)) // m3 orphaned
	unknown, err := apikey.Generate()
	must(t, err)
	for range 3 {
		w.verify(w.verA, k.PlainKey)
	}
	w.verify(w.verA, "junk")
	w.verify(w.verA, unknown)
	w.verify(w.verB, k.PlainKey)
	w.verify(w.verA, k2.PlainKey)
	// A key pasted into a path must not become a label value.
	w.do("DELETE", "/v1/keys/"+k.PlainKey, w.ownerTok, nil).WantError(http.StatusNotFound, "")
	w.do("GET", "/v1/nope/"+k.PlainKey, w.ownerTok, nil).WantError(http.StatusNotFound, "")

	// Keys are counted by state on the service's schedule (here every
	// 10 ms), not per scrape: wait for a count after the changes.
	eventually(t, "the keys counted by state", func() bool {
		fams := parseMetrics(t, string(w.do("GET", "/metrics", "", nil).WantStatus(http.StatusOK).Body))
		active, _ := metricValue(fams, "appkeys_keys", map[string]string{"state": "active"})
		orphaned, _ := metricValue(fams, "appkeys_keys", map[string]string{"state": "orphaned"})
		return active == 1 && orphaned == 1
	})

	r := w.do("GET", "/metrics", "", nil).WantStatus(http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("metrics Content-Type %q", ct)
	}
	text := string(r.Body)
	if strings.Contains(text, k.PlainKey) || strings.Contains(text, "cak_") {
		t.Fatal("the metrics carry a key")
	}
	fams := parseMetrics(t, text)

	var ours []*dto.MetricFamily
	for name, f := range fams {
		if strings.HasPrefix(name, "appkeys_") {
			ours = append(ours, f)
		}
	}
	sort.Slice(ours, func(i, j int) bool { return ours[i].GetName() < ours[j].GetName() })
	for _, want := range []struct {
		name string
		typ  dto.MetricType
	}{
		{"appkeys_http_requests_total", dto.MetricType_COUNTER},
		{"appkeys_http_request_duration_seconds", dto.MetricType_HISTOGRAM},
		{"appkeys_verify_results_total", dto.MetricType_COUNTER},
		{"appkeys_keys", dto.MetricType_GAUGE},
		{"appkeys_store_duration_seconds", dto.MetricType_HISTOGRAM},
		{"appkeys_feed_store_reads_total", dto.MetricType_COUNTER},
		{"appkeys_feed_listen_reconnects_total", dto.MetricType_COUNTER},
		{"appkeys_feed_wakeups_total", dto.MetricType_COUNTER},
		{"appkeys_feed_waiting", dto.MetricType_GAUGE},
	} {
		f := fams[want.name]
		if f == nil {
			t.Errorf("no %s family", want.name)
			continue
		}
		if f.GetType() != want.typ || f.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q", want.name, f.GetType(), f.GetHelp())
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	must(t, err)
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}

	value := func(name string, labels map[string]string) (float64, bool) { return metricValue(fams, name, labels) }
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"appkeys_verify_results_total", map[string]string{"code": "VALID"}, 3},
		{"appkeys_verify_results_total", map[string]string{"code": "MALFORMED"}, 1},
		{"appkeys_verify_results_total", map[string]string{"code": "NOT_FOUND"}, 1},
		{"appkeys_verify_results_total", map[string]string{"code": "WRONG_APP"}, 1},
		{"appkeys_verify_results_total", map[string]string{"code": "REVOKED"}, 1},
		{"appkeys_verify_results_total", map[string]string{"code": "EXPIRED"}, 0},
		{"appkeys_verify_results_total", map[string]string{"code": "ORPHANED"}, 0},
		{"appkeys_http_requests_total", map[string]string{"route": "POST /v1/verify", "code": "200"}, 7},
		{"appkeys_http_requests_total", map[string]string{"route": "POST /v1/apps/{id}/keys", "code": "201"}, 3},
		{"appkeys_http_requests_total", map[string]string{"route": "DELETE /v1/keys/{id}", "code": "404"}, 1},
		{"appkeys_http_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 1},
		{"appkeys_http_request_duration_seconds", map[string]string{"route": "POST /v1/verify"}, 7},
		{"appkeys_keys", map[string]string{"state": "active"}, 1},
		{"appkeys_keys", map[string]string{"state": "orphaned"}, 1},
		{"appkeys_keys", map[string]string{"state": "expired"}, 0},
	} {
		got, ok := value(c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n, ok := value("appkeys_store_duration_seconds", map[string]string{"op": "key_lookup"}); !ok || n < 6 {
		t.Errorf("store key_lookup observations: %v %v", n, ok)
	}
	// The client reads the same text.
	if m, err := w.owner.Metrics(ctx(t)); err != nil || !strings.Contains(m, "appkeys_keys") {
		t.Fatalf("client metrics: %v", err)
	}
	_ = client.StateAny
}

// parseMetrics parses a Prometheus text exposition.
func parseMetrics(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// metricValue is the value of the sample of family name whose labels
// include labels: a counter's or gauge's value, a histogram's count.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestScrapeCostsNoTableScan: however often /metrics is scraped, the keys
// table is counted on the service's own schedule (at start, then every
// 30 s), never per scrape, so a scrape costs the same with a million keys
// as with none.
func TestScrapeCostsNoTableScan(t *testing.T) {
	w := newWorld(t)
	for i := range 5 {
		w.createKey(w.owner, w.appA.ID, fmt.Sprint("k", i))
	}
	const scrapes = 30
	var counted float64
	for range scrapes {
		fams := parseMetrics(t, string(w.do("GET", "/metrics", "", nil).WantStatus(http.StatusOK).Body))
		counted, _ = metricValue(fams, "appkeys_store_duration_seconds", map[string]string{"op": "count_keys"})
	}
	// The count at start, and perhaps one refresh if this took 30 s.
	if counted > 2 {
		t.Fatalf("%d scrapes counted the keys table %v times; want at most once per 30 s", scrapes, counted)
	}
}
