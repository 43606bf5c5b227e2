package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// TestServeHTTPFaults puts the handler in front of a key service failing in
// each way it can. For every fault: no 2xx without a valid answer; a known
// key is served stale within stale_if_error and refused with 503 past it;
// an unknown key gets 503 with Retry-After, never 401 or 200; the key never
// goes upstream; and the metrics move: the call's status code, the stale
// answer, the unavailable request.
func TestServeHTTPFaults(t *testing.T) {
	for _, fault := range verifytest.Faults {
		t.Run(string(fault), func(t *testing.T) {
			srv := verifytest.New(t)
			srv.Delay = 10 * time.Second
			app := uniqueApp("app_fault_" + string(fault))
			// A short timeout is what turns a key service that never
			// answers into an outage; for the other faults it would only
			// turn a slow read on a loaded machine into an "error" where
			// the fault's own label is counted.
			timeout := 5 * time.Second
			if fault == verifytest.BlackHole || fault == verifytest.Slow {
				timeout = 300 * time.Millisecond
			}
			base := Handler{KeyService: srv.URL, VerifierToken: srv.Token, Timeout: caddy.Duration(timeout),
				CacheTTL: caddy.Duration(time.Millisecond)}
			stale := base
			stale.App, stale.StaleIfError = app, caddy.Duration(time.Hour)
			h := provision(t, &stale)
			short := base
			short.App, short.StaleIfError = app+"_short", caddy.Duration(time.Millisecond)
			hShort := provision(t, &short)
			known := srv.AddKey(t, "key_known", app)
			knownShort := srv.AddKey(t, "key_short", app+"_short")

			req := func(key string) *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.Header.Set("X-API-Key", key)
				return r
			}
			check := func(h *Handler, key string, want ...int) http.Header {
				t.Helper()
				status, answer, up, _ := serve(t, h, req(key))
				if !contains(want, status) {
					t.Fatalf("status %d; want one of %v", status, want)
				}
				if status == 200 {
					for name, vs := range up.Header {
						if strings.Contains(strings.Join(vs, " "), key) {
							t.Fatalf("the key went upstream in %s", name)
						}
					}
				}
				switch status {
				case 503:
					if answer.Get("Retry-After") == "" || answer.Get("WWW-Authenticate") != "" {
						t.Fatalf("503 answer headers %v; want Retry-After and no challenge", answer)
					}
				case 401:
					if answer.Get("WWW-Authenticate") == "" {
						t.Fatalf("401 without a challenge")
					}
				}
				return answer
			}
			check(h, known, 200)
			check(hShort, knownShort, 200)

			metric := func(name string) float64 {
				switch name {
				case "stale":
					return testutil.ToFloat64(staleServed.WithLabelValues(app))
				case "unavailable":
					return testutil.ToFloat64(requestsTotal.WithLabelValues(app, "unavailable", "keyservice"))
				case "allowed_stale":
					return testutil.ToFloat64(requestsTotal.WithLabelValues(app, "allowed", "stale"))
				}
				return testutil.ToFloat64(keyserviceRequests.WithLabelValues(app, name))
			}
			srv.SetFault(fault)
			time.Sleep(5 * time.Millisecond) // both cache entries are past cache_ttl; hShort's past stale_if_error too

			if fault == verifytest.Flap {
				for range 6 { // three calls a round: each kind meets both answers
					check(h, known, 200)
					check(h, known, 200)
					check(h, mustKey(t), 401, 503)
				}
				if metric("200") < 2 || metric("503") < 2 || metric("stale") < 1 {
					t.Fatalf("flap counted 200: %v, 503: %v, stale: %v", metric("200"), metric("503"), metric("stale"))
				}
				return
			}
			check(h, known, 200)
			check(h, mustKey(t), 503)
			check(hShort, knownShort, 503)

			label := verifytest.StatusLabel(fault)
			for name, want := range map[string]float64{label: 2, "stale": 1, "allowed_stale": 1, "unavailable": 1} {
				if got := metric(name); got != want {
					t.Errorf("metric %s = %v; want %v", name, got, want)
				}
			}
			if n := srv.TrapCalls.Load(); n != 0 {
				t.Fatalf("the redirect was followed %d times", n)
			}
		})
	}
}

var runs atomic.Int64

// uniqueApp names an app of its own for each run, so that counters (package
// values, kept across tests) start from zero under -count too.
func uniqueApp(prefix string) string {
	return prefix + "_" + strconv.FormatInt(runs.Add(1), 10)
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
