package caddymodule

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

func TestMetricsRegisterOnEveryLoad(t *testing.T) {
	for i := 0; i < 2; i++ { // a reload brings a fresh registry
		reg := prometheus.NewRegistry()
		for j := 0; j < 2; j++ { // two sites register into the same one
			if err := registerMetrics(reg); err != nil {
				t.Fatalf("load %d, site %d: %v", i, j, err)
			}
		}
	}
}

func TestMetricsCountAndLint(t *testing.T) {
	ks := verifytest.New(t)
	const app = "app_metrics"
	h := provision(t, &Handler{KeyService: ks.URL, App: app, VerifierToken: ks.Token})
	valid := ks.AddKeyWithCode(t, "key_ok", app, "VALID")
	// The collectors are package values: with -count=N they keep counting
	// across runs, so every figure is a difference.
	before := testutil.ToFloat64(requestsTotal.WithLabelValues(app, "allowed", "valid"))
	malformedBefore := testutil.ToFloat64(requestsTotal.WithLabelValues(app, "denied", "malformed"))
	hitsBefore := testutil.ToFloat64(cacheHits.WithLabelValues(app))
	callsBefore := testutil.ToFloat64(keyserviceRequests.WithLabelValues(app, "200"))
	for i := 0; i < 3; i++ {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-API-Key", valid)
		serve(t, h, r)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", "cak_bad")
	serve(t, h, r)

	if got := testutil.ToFloat64(requestsTotal.WithLabelValues(app, "allowed", "valid")) - before; got != 3 {
		t.Fatalf("allowed requests counted %v; want 3", got)
	}
	if got := testutil.ToFloat64(requestsTotal.WithLabelValues(app, "denied", "malformed")) - malformedBefore; got != 1 {
		t.Fatalf("malformed denial not counted")
	}
	if got := testutil.ToFloat64(cacheHits.WithLabelValues(app)) - hitsBefore; got != 2 {
		t.Fatalf("cache hits %v; want 2", got)
	}
	if got := testutil.ToFloat64(keyserviceRequests.WithLabelValues(app, "200")) - callsBefore; got != 1 {
		t.Fatalf("key service requests %v; want 1", got)
	}

	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	for _, c := range collectors {
		if ps, err := testutil.CollectAndLint(c); err != nil || len(ps) != 0 {
			t.Errorf("CollectAndLint: %v %v", ps, err)
		}
	}
	n, err := testutil.GatherAndCount(reg, "appkey_auth_cache_entries")
	if err != nil || n < 2 {
		t.Fatalf("cache entries series %d, %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP appkey_auth_events_last_seq Sequence number of the newest change-feed event applied.
# TYPE appkey_auth_events_last_seq gauge
appkey_auth_events_last_seq{app="app_metrics"} 0
`), "appkey_auth_events_last_seq"); err != nil {
		t.Fatal(err)
	}
}
