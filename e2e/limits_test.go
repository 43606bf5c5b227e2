package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/appkeys/appkeys/internal/client"
)

// TestKeyLimitsAtTheEdge is issue 17's promise, a real Caddy in front of
// the real key service: a 5/s limit enforced with its headers, a client
// outside the key's networks refused with 403 (a forged X-Forwarded-For
// changes nothing without trusted_proxies, and counts with them), and a
// PATCH of the limits picked up within a second while cache_ttl is long.
func TestKeyLimitsAtTheEdge(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	a := s.app("limited")
	// Only the feed can bring a PATCH within a second: answers are cached
	// for ten minutes.
	site := s.site(a, "cache_ttl 10m", "feed_down_revalidate 10m")
	limitedKey := func(rl *client.RateLimit, cidrs ...string) *client.CreatedKey {
		t.Helper()
		k, err := s.owner.CreateKey(ctx, a.ID, client.CreateKeyRequest{Name: "limited-" + time.Now().Format("150405.000000000"),
			ExpiresAt: time.Now().Add(time.Hour), RateLimit: rl, AllowedCIDRs: cidrs})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rated := limitedKey(&client.RateLimit{Requests: 5, Per: "1s"})
	outside := limitedKey(nil, "10.0.0.0/8")
	inside := limitedKey(nil, "127.0.0.0/8")
	s.load(s.ks.URL, site)
	requests := func(result string) float64 {
		return metric(adminMetrics(t), "appkey_auth_requests_total", "app", a.ID, "result", result)
	}

	// The attacker over the limit: a burst of 5 passes, then 429 with
	// Retry-After and the RateLimit fields.
	passed := 0
	var refused answer
	for range 100 {
		got := s.get(site, "X-API-Key", rated.PlainKey)
		if got.status == http.StatusTooManyRequests {
			refused = got
			break
		}
		if got.status != 200 {
			t.Fatalf("a rate-limited key within its limit: %d %s", got.status, got.body)
		}
		passed++
	}
	if refused.status == 0 || passed < 5 {
		t.Fatalf("%d requests passed before the first 429 (%d); want at least the burst of 5, then 429", passed, refused.status)
	}
	if got := refused.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	checkField(t, refused.header, "RateLimit-Policy", map[string]int64{"q": 5, "w": 1})
	checkField(t, refused.header, "RateLimit", map[string]int64{"r": 0, "t": 1})
	// Over any stretch of time, no more than the burst and the refill pass.
	start, passed := time.Now(), 0
	for range 40 {
		if got := s.get(site, "X-API-Key", rated.PlainKey); got.status == 200 {
			passed++
		} else if got.status != http.StatusTooManyRequests {
			t.Fatalf("over the limit: %d %s", got.status, got.body)
		}
	}
	if bound := 5 + int(5*time.Since(start).Seconds()) + 1; passed > bound {
		t.Fatalf("%d requests passed in %s; a 5/s limit allows at most %d", passed, time.Since(start), bound)
	}
	if n := requests("rate_limited"); n < 1 {
		t.Errorf("appkey_auth_requests_total{result=\"rate_limited\"} = %v", n)
	}

	// The attacker outside the networks, with and without a forged
	// X-Forwarded-For: the same 403, and the upstream never sees it.
	seen := len(s.upstream.headers())
	plain := s.get(site, "X-API-Key", outside.PlainKey)
	forged := s.get(site, "X-API-Key", outside.PlainKey, "X-Forwarded-For", "10.1.2.3")
	if plain.status != http.StatusForbidden || forged.status != http.StatusForbidden || plain.body != forged.body {
		t.Fatalf("outside the key's networks: %d %q, forged X-Forwarded-For: %d %q; want the same 403", plain.status, plain.body, forged.status, forged.body)
	}
	if n := len(s.upstream.headers()); n != seen {
		t.Fatalf("the upstream saw %d refused requests", n-seen)
	}
	if got := s.get(site, "X-API-Key", inside.PlainKey); got.status != 200 {
		t.Fatalf("inside the key's networks: %d", got.status)
	}
	if n := requests("forbidden"); n < 2 {
		t.Errorf("appkey_auth_requests_total{result=\"forbidden\"} = %v, want 2", n)
	}

	// A PATCH reaches the sidecar through the feed within a second, both
	// ways: opened to this client, and closed to it.
	if _, err := s.owner.UpdateKey(ctx, outside.ID, client.UpdateKeyRequest{AllowedCIDRs: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(site, outside.PlainKey, 200, time.Second, http.StatusForbidden)
	if _, err := s.owner.UpdateKey(ctx, inside.ID, client.UpdateKeyRequest{AllowedCIDRs: []string{"10.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(site, inside.PlainKey, http.StatusForbidden, time.Second, 200)
	// A rate limit removed: a 200 alone proves nothing (the bucket refills),
	// so wait for the sidecar to apply the event, then every request passes.
	if _, err := s.owner.UpdateKey(ctx, rated.ID, client.UpdateKeyRequest{ClearRateLimit: true}); err != nil {
		t.Fatal(err)
	}
	sidecar, err := client.New(s.ks.URL, a.VerifierToken)
	if err != nil {
		t.Fatal(err)
	}
	head, err := sidecar.EventsHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the sidecar applying key.updated", func() bool {
		return metric(adminMetrics(t), "appkey_auth_events_last_seq", "app", a.ID) >= float64(head)
	})
	for i := range 20 {
		if got := s.get(site, "X-API-Key", rated.PlainKey); got.status != 200 {
			t.Fatalf("request %d after the limit was removed: %d", i, got.status)
		}
	}

	// Behind a trusted proxy, the forwarded address is the client's.
	s.globals = []string{"servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"}
	s.load(s.ks.URL, site)
	if got := s.get(site, "X-API-Key", inside.PlainKey, "X-Forwarded-For", "10.1.2.3"); got.status != 200 {
		t.Fatalf("a client in the key's networks behind a trusted proxy: %d", got.status)
	}
	if got := s.get(site, "X-API-Key", inside.PlainKey, "X-Forwarded-For", "11.0.0.1"); got.status != http.StatusForbidden {
		t.Fatalf("a client outside the key's networks behind a trusted proxy: %d", got.status)
	}
}

// checkField parses a RateLimit field as a structured-field list and
// checks its one item: the "key" policy with the given parameters.
func checkField(t *testing.T, h http.Header, name string, want map[string]int64) {
	t.Helper()
	list, err := httpsfv.UnmarshalList(h.Values(name))
	if err != nil || len(list) != 1 {
		t.Fatalf("%s %q: %v (%d members)", name, h.Values(name), err, len(list))
	}
	item, ok := list[0].(httpsfv.Item)
	if !ok || item.Value != "key" {
		t.Fatalf("%s %q: want the item \"key\"", name, h.Values(name))
	}
	for p, v := range want {
		if got, ok := item.Params.Get(p); !ok || got != v {
			t.Errorf("%s %q: %s = %v, want %d", name, h.Values(name), p, got, v)
		}
	}
}

// TestLimitShareAtTheEdge: a sidecar told it is one of 2 replicas allows
// half a key's limit, and says so in RateLimit-Policy.
func TestLimitShareAtTheEdge(t *testing.T) {
	s := newStack(t)
	a := s.app("shared")
	site := s.site(a, "limit_share 2")
	k, err := s.owner.CreateKey(context.Background(), a.ID, client.CreateKeyRequest{Name: "shared", ExpiresAt: time.Now().Add(time.Hour),
		RateLimit: &client.RateLimit{Requests: 10, Per: "1m"}})
	if err != nil {
		t.Fatal(err)
	}
	s.load(s.ks.URL, site)
	s.waitFeedStarted(a)
	passed := 0
	var refused answer
	for range 20 {
		got := s.get(site, "X-API-Key", k.PlainKey)
		if got.status == http.StatusTooManyRequests {
			refused = got
			break
		}
		passed++
	}
	// 10 a minute shared by 2: a burst of 5 here, then one more every 12 s.
	if passed != 5 || refused.status != http.StatusTooManyRequests {
		t.Fatalf("%d passed before %d; want 5, then 429", passed, refused.status)
	}
	checkField(t, refused.header, "RateLimit-Policy", map[string]int64{"q": 5, "w": 60})
	if ra, err := strconv.Atoi(refused.header.Get("Retry-After")); err != nil || ra < 1 || ra > 12 {
		t.Errorf("Retry-After %q, want 1 to 12 seconds", refused.header.Get("Retry-After"))
	}
}

// TestRefusedRequestsCountInUsage: a request refused by its key's own
// limits reaches the key's usage as rate_limited or forbidden, beside the
// allowed ones, so the console's chart shows a key hitting its limit.
func TestRefusedRequestsCountInUsage(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	a := s.app("counted")
	site := s.site(a, "usage_interval 1s")
	newKey := func(rl *client.RateLimit, cidrs ...string) *client.CreatedKey {
		t.Helper()
		k, err := s.owner.CreateKey(ctx, a.ID, client.CreateKeyRequest{Name: "counted-" + time.Now().Format("150405.000000000"),
			ExpiresAt: time.Now().Add(time.Hour), RateLimit: rl, AllowedCIDRs: cidrs})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rated := newKey(&client.RateLimit{Requests: 3, Per: "1m"})
	outside := newKey(nil, "10.0.0.0/8")
	s.load(s.ks.URL, site)
	s.waitFeedStarted(a)

	var want client.UsageCount
	for range 10 {
		switch got := s.get(site, "X-API-Key", rated.PlainKey); got.status {
		case http.StatusOK:
			want.Allowed++
		case http.StatusTooManyRequests:
			want.RateLimited++
		default:
			t.Fatalf("a rate-limited key: %d %s", got.status, got.body)
		}
	}
	if want.Allowed != 3 || want.RateLimited != 7 {
		t.Fatalf("3/min over 10 requests: %d allowed, %d refused", want.Allowed, want.RateLimited)
	}
	for range 4 {
		if got := s.get(site, "X-API-Key", outside.PlainKey); got.status != http.StatusForbidden {
			t.Fatalf("a key used from outside its networks: %d %s", got.status, got.body)
		}
	}
	var rs, os client.UsageCount
	for i := 0; ; i++ {
		rs, os = s.keyUsage(rated.ID), s.keyUsage(outside.ID)
		if rs.Allowed == want.Allowed && rs.RateLimited == want.RateLimited && rs.Forbidden == 0 &&
			os.Forbidden == 4 && os.Allowed == 0 && os.RateLimited == 0 {
			return
		}
		if i == 150 {
			t.Fatalf("after 15 s the usage reads %+v and %+v; want %+v and 4 forbidden", rs, os, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFeedStarted waits until the sidecar of app a has started following
// the feed, by an event it applied. The feed's start from its head purges
// the cache, and with it any rate-limit bucket made before: a test that
// counts a bucket's requests starts after it.
func (s *stack) waitFeedStarted(a *client.CreatedApp) {
	s.t.Helper()
	throwaway := s.key(nil, a.ID, time.Now().Add(time.Hour))
	if err := s.owner.RevokeKey(context.Background(), throwaway.ID); err != nil {
		s.t.Fatal(err)
	}
	sidecar, err := client.New(s.ks.URL, a.VerifierToken)
	if err != nil {
		s.t.Fatal(err)
	}
	head, err := sidecar.EventsHead(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	waitFor(s.t, 5*time.Second, "the feed started", func() bool {
		return metric(adminMetrics(s.t), "appkey_auth_events_last_seq", "app", a.ID) >= float64(head)
	})
}
