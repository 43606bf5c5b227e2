package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestBadKeyFloodLeavesGoodKeysIn: guessers from many addresses spend the
// app's budget of failed verifies at the key service (set low here), which
// then answers their guesses 429. The sidecar passes that 429 on to the
// guesser and charges it to the guesser's address; it is no outage: the
// circuit breaker stays closed, nothing is served stale, no request gets
// 503, and a good key nobody has used yet, from another address, gets in.
func TestBadKeyFloodLeavesGoodKeysIn(t *testing.T) {
	const budget = 5 // failed verifies the key service allows the app at once
	s := newStack(t, servicetest.WithConfig(func(c *keyserver.Config) {
		c.VerifyFailureRate, c.VerifyFailureBurst = 0.001, budget
	}))
	a := s.app("flooded")
	site := s.site(a, "failed_attempts 3/1h")
	s.load(s.ks.URL, site)
	good := s.key(nil, a.ID, time.Now().Add(time.Hour))

	// Four guessers, three bad keys each: within each address's own
	// budget, more than twice the app's at the key service.
	counts := map[int]int{}
	var guessers []string
	for i := 1; i <= 4; i++ {
		from := fmt.Sprintf("127.0.1.%d", i)
		guessers = append(guessers, from)
		hc, _ := clientFrom(t, from, false)
		for range 3 {
			got := send(t, hc, site, newBadKey(t), false)
			counts[got.status]++
			if got.status == 429 {
				if ra, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || ra < 1 {
					t.Errorf("429 from the sidecar with Retry-After %q; want whole seconds", got.header.Get("Retry-After"))
				}
			}
		}
	}
	ksMetrics := scrape(t, s.ks.URL+"/metrics")
	if n := metric(ksMetrics, "appkeys_verify_throttled_total"); n < 1 {
		t.Fatalf("the key service throttled no verify (%v); the flood did not reach its budget", n)
	}
	t.Logf("guesses answered %v; key service throttled %v verifies", counts, metric(ksMetrics, "appkeys_verify_throttled_total"))
	if counts[401] != budget || counts[429] != 12-budget {
		t.Errorf("12 guesses answered %v; want %d× 401 and the rest 429, never 503", counts, budget)
	}

	// A good key nobody has used, from another address: checked, and in.
	other, _ := clientFrom(t, "127.0.0.2", false)
	if got := send(t, other, site, good.PlainKey, false); got.status != 200 {
		t.Fatalf("a good, uncached key after the flood: %d (%s); want 200", got.status, got.body)
	}
	// Each guesser's three attempts were charged, the key service's 429s
	// too: the next guess is the sidecar's own 429, with no call.
	before := metric(scrape(t, s.ks.URL+"/metrics"), "appkeys_verify_throttled_total")
	for _, from := range guessers {
		hc, _ := clientFrom(t, from, false)
		if got := send(t, hc, site, newBadKey(t), false); got.status != 429 {
			t.Errorf("guesser %s's fourth bad key: %d; want 429", from, got.status)
		}
	}
	if n := metric(scrape(t, s.ks.URL+"/metrics"), "appkeys_verify_throttled_total") - before; n != 0 {
		t.Errorf("%v guesses past their address's budget reached the key service", n)
	}

	m := adminMetrics(t)
	for _, series := range [][]string{
		{"appkey_auth_requests_total", "app", a.ID, "result", "unavailable"},
		{"appkey_auth_stale_served_total", "app", a.ID},
	} {
		if n := metric(m, series[0], series[1:]...); n != 0 {
			t.Errorf("%v = %v; want 0: the key service's 429 was taken for an outage", series, n)
		}
	}
	if n := metric(m, "appkey_auth_requests_total", "app", a.ID, "result", "throttled", "reason", "keyservice"); n != float64(12-budget) {
		t.Errorf("appkey_auth_requests_total{result=\"throttled\",reason=\"keyservice\"} = %v; want %d", n, 12-budget)
	}
	if n := metric(m, "appkey_auth_requests_total", "app", a.ID, "result", "throttled", "reason", "failed_attempts"); n != float64(len(guessers)) {
		t.Errorf("appkey_auth_requests_total{result=\"throttled\",reason=\"failed_attempts\"} = %v; want %d", n, len(guessers))
	}
}
