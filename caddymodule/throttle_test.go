package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// fromAddr is a request with key from a client at addr: as a direct peer,
// or, with viaProxy, as the client IP Caddy derived behind a trusted proxy.
func fromAddr(key, addr string, viaProxy bool) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", key)
	r.RemoteAddr = addr + ":40000"
	if viaProxy {
		r.RemoteAddr = "127.0.0.1:40000"
		vars := map[string]any{caddyhttp.ClientIPVarKey: addr}
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	}
	return r
}

// TestThrottleFailedAttempts: a client guessing keys gets 429 once it has
// used up its failed attempts, and its guesses stop reaching the key
// service, while clients with good keys (even at the same address, with a
// key already known good) keep getting in, and trusted networks are exempt.
func TestThrottleFailedAttempts(t *testing.T) {
	srv := verifytest.New(t)
	const app = "app_throttle"
	h := provision(t, &Handler{KeyService: srv.URL, App: app, VerifierToken: srv.Token,
		FailedAttempts:  &FailedAttempts{Limit: 3, Window: caddy.Duration(time.Hour)},
		TrustedNetworks: []string{"10.0.0.0/8"}})
	good := srv.AddKey(t, "key_good", app)
	guesser, goodClient := "198.51.100.9", "203.0.113.1"
	expect := func(r *http.Request, want int) http.Header {
		t.Helper()
		status, answer, _, _ := serve(t, h, r)
		if status != want {
			t.Fatalf("status %d; want %d", status, want)
		}
		return answer
	}
	throttledBefore := testutil.ToFloat64(throttled.WithLabelValues(app))

	for range 10 { // good keys never use up attempts
		expect(fromAddr(good, guesser, true), 200)
	}
	for range 3 {
		expect(fromAddr(mustKey(t), guesser, true), 401)
	}
	calls := srv.VerifyCalls.Load()
	answer := expect(fromAddr(mustKey(t), guesser, true), 429)
	if ra, err := strconv.Atoi(answer.Get("Retry-After")); err != nil || ra < 1 || ra > 1200 {
		t.Fatalf("Retry-After %q; want whole seconds up to the 20m it takes to earn one attempt back", answer.Get("Retry-After"))
	}
	expect(fromAddr("cak_malformed", guesser, true), 429)
	if srv.VerifyCalls.Load() != calls {
		t.Fatal("a throttled guess reached the key service")
	}
	if got := testutil.ToFloat64(throttled.WithLabelValues(app)) - throttledBefore; got != 2 {
		t.Fatalf("appkey_auth_throttled_total moved by %v; want 2", got)
	}
	// The same address with a key already known good still gets in.
	expect(fromAddr(good, guesser, true), 200)
	// The address is Caddy's client IP: the proxy's own address is not it.
	expect(fromAddr(mustKey(t), "127.0.0.1", false), 401)
	// Another client: its good key works, its own bad keys count apart.
	expect(fromAddr(good, goodClient, false), 200)
	expect(fromAddr(mustKey(t), goodClient, false), 401)
	// A trusted network is never throttled.
	for range 6 {
		expect(fromAddr(mustKey(t), "10.1.2.3", true), 401)
	}
}

func TestThrottleOff(t *testing.T) {
	srv := verifytest.New(t)
	h := provision(t, &Handler{KeyService: srv.URL, App: "app_throttle_off", VerifierToken: srv.Token,
		FailedAttempts: &FailedAttempts{Off: true}})
	if h.throttle != nil {
		t.Fatal("throttle built while off")
	}
	for range 30 {
		if status, _, _, _ := serve(t, h, fromAddr(mustKey(t), "198.51.100.10", false)); status != 401 {
			t.Fatalf("status %d; want 401 with the throttle off", status)
		}
	}
}

// TestThrottleSurvivesReload: a reload with the same limits keeps the
// counts, so it hands a guessing client no fresh budget.
func TestThrottleSurvivesReload(t *testing.T) {
	srv := verifytest.New(t)
	cfg := Handler{KeyService: srv.URL, App: "app_throttle_reload", VerifierToken: srv.Token,
		FailedAttempts: &FailedAttempts{Limit: 1, Window: caddy.Duration(time.Hour)}}
	a, b := cfg, cfg
	provision(t, &a)
	serve(t, &a, fromAddr(mustKey(t), "198.51.100.11", false))
	provision(t, &b)
	if status, _, _, _ := serve(t, &b, fromAddr(mustKey(t), "198.51.100.11", false)); status != 429 {
		t.Fatalf("after reload: %d; want 429", status)
	}
}

// TestThrottleChargesOnlyTheClient: a key the key service could not check
// gives its attempt back (the outage is not the client's doing), while a
// request whose client hung up before the verdict keeps it.
func TestThrottleChargesOnlyTheClient(t *testing.T) {
	srv := verifytest.New(t)
	srv.Delay = 10 * time.Second
	h := provision(t, &Handler{KeyService: srv.URL, App: uniqueApp("app_throttle_charge"), VerifierToken: srv.Token,
		Timeout: caddy.Duration(300 * time.Millisecond), FailedAttempts: &FailedAttempts{Limit: 1, Window: caddy.Duration(time.Hour)}})

	srv.SetFault(verifytest.HTTP503)
	for i := range 4 {
		if status, _, _, _ := serve(t, h, fromAddr(mustKey(t), "198.51.100.20", false)); status != 503 {
			t.Fatalf("key service down, request %d: %d; want 503, not a charge", i, status)
		}
	}

	srv.SetFault(verifytest.Slow)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is gone before the verdict
	r := fromAddr(mustKey(t), "198.51.100.21", false)
	r = r.WithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer()))
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned request: %v; want the context's error", err)
	}
	if status, _, _, _ := serve(t, h, fromAddr(mustKey(t), "198.51.100.21", false)); status != 429 {
		t.Fatalf("after an abandoned bad key: %d; want 429", status)
	}
}

// TestThrottleKeyServiceRefusal: when the key service refuses a bad key
// with 429 (the app's budget of failed verifies is spent), the client gets
// that 429 with the key service's Retry-After and is charged the attempt;
// it is no outage, so good keys go on being checked.
func TestThrottleKeyServiceRefusal(t *testing.T) {
	srv := verifytest.New(t)
	app := uniqueApp("app_throttle_ks")
	h := provision(t, &Handler{KeyService: srv.URL, App: app, VerifierToken: srv.Token,
		FailedAttempts: &FailedAttempts{Limit: 2, Window: caddy.Duration(time.Hour)}})
	srv.SetFault(verifytest.HTTP429)
	byService := func() float64 {
		return testutil.ToFloat64(requestsTotal.WithLabelValues(app, "throttled", "keyservice"))
	}
	before := byService()
	for i := range 2 {
		status, answer, _, _ := serve(t, h, fromAddr(mustKey(t), "198.51.100.30", false))
		if status != 429 || answer.Get("Retry-After") != "7" || answer.Get("WWW-Authenticate") != "" {
			t.Fatalf("guess %d: %d %v; want 429 with the key service's Retry-After", i, status, answer)
		}
	}
	if got := byService() - before; got != 2 {
		t.Fatalf("requests throttled by the key service counted %v; want 2", got)
	}
	calls := srv.VerifyCalls.Load()
	if status, _, _, _ := serve(t, h, fromAddr(mustKey(t), "198.51.100.30", false)); status != 429 || srv.VerifyCalls.Load() != calls {
		t.Fatalf("third guess: %d, %d calls; want the sidecar's own 429 without a call", status, srv.VerifyCalls.Load()-calls)
	}
	for i := range 8 { // more than the breaker's threshold of refusals, from elsewhere
		serve(t, h, fromAddr(mustKey(t), fmt.Sprintf("198.51.100.%d", 40+i), false))
	}
	good := srv.AddKey(t, "key_good", app)
	if status, _, _, _ := serve(t, h, fromAddr(good, "203.0.113.30", false)); status != 200 {
		t.Fatalf("a good key after the refusals: %d; want 200", status)
	}
}
