package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// consoleUser is someone logged in to the key service's web console.
type consoleUser struct {
	t    *testing.T
	base string
	c    *http.Client
}

var loginCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func loginConsole(t *testing.T, base, token string) *consoleUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u := &consoleUser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 15 * time.Second}}
	m := loginCSRF.FindStringSubmatch(u.get("/login"))
	if m == nil {
		t.Fatal("the login page has no CSRF token")
	}
	resp, err := u.c.PostForm(base+"/login", url.Values{"csrf": {m[1]}, "token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return u
}

func (u *consoleUser) get(path string) string {
	u.t.Helper()
	resp, err := u.c.Get(u.base + path)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		u.t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	return string(b)
}

var chartBar = regexp.MustCompile(`data-allowed="(\d+)" data-limited="(\d+)"`)

// chartAllowed sums the allowed requests the key page's chart draws.
func (u *consoleUser) chartAllowed(keyID string) int {
	u.t.Helper()
	n := 0
	for _, m := range chartBar.FindAllStringSubmatch(u.get("/keys/"+keyID), -1) {
		a, _ := strconv.Atoi(m[1])
		n += a
	}
	return n
}

// keyUsage sums a key's requests over the last day, as the API reads them.
func (s *stack) keyUsage(keyID string) client.UsageCount {
	s.t.Helper()
	u, err := s.owner.KeyUsage(context.Background(), keyID, time.Time{}, time.Time{})
	if err != nil {
		s.t.Fatal(err)
	}
	var sum client.UsageCount
	for _, p := range u.Points {
		sum.Allowed += p.Allowed
		sum.RateLimited += p.RateLimited
		sum.Forbidden += p.Forbidden
	}
	return sum
}

func (s *stack) sendN(site Site, key string, n int) {
	s.t.Helper()
	for range n {
		if a := s.get(site, "X-API-Key", key); a.status != 200 {
			s.t.Fatalf("a good key: %d %s", a.status, a.body)
		}
	}
}

// TestUsageReachesTheKeyService: requests through a real Caddy show up in
// the key service's usage per key, and in the console's chart, within 15 s (the sidecar reports every
// second here, every 10 s by default), cache hits included, and raise the
// key's Last Used. A reload with the same settings keeps the counts in the
// sidecar's pool; a reload with new settings and the final unload make
// the old reporter send what it holds: every request counted exactly once.
func TestUsageReachesTheKeyService(t *testing.T) {
	s := newStack(t, servicetest.WithConfig(func(c *keyserver.Config) { c.Console = console.Mount }))
	a := s.app("counted")
	k1 := s.key(nil, a.ID, time.Now().Add(time.Hour))
	k2 := s.key(nil, a.ID, time.Now().Add(time.Hour))
	site := s.site(a, "usage_interval 1s")
	s.load(s.ks.URL, site)

	s.sendN(site, k1.PlainKey, 25) // one verify, then cache hits
	s.sendN(site, k2.PlainKey, 5)
	// Refused keys count nowhere: not another app's key, not a revoked
	// one, not a made-up one (a guessing client cannot fill the counts).
	other := s.key(nil, s.app("other").ID, time.Now().Add(time.Hour))
	gone := s.key(nil, a.ID, time.Now().Add(time.Hour))
	if err := s.owner.RevokeKey(context.Background(), gone.ID); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{other.PlainKey, gone.PlainKey, newBadKey(t)} {
		if got := s.get(site, "X-API-Key", bad); got.status != 401 {
			t.Fatalf("a refused key: %d", got.status)
		}
	}
	waitFor(t, 15*time.Second, "usage of 25 and 5 requests", func() bool {
		return s.keyUsage(k1.ID).Allowed == 25 && s.keyUsage(k2.ID).Allowed == 5
	})
	// The console's chart draws the same within the same bound.
	web := loginConsole(t, s.ks.URL, s.ks.OwnerToken)
	waitFor(t, 15*time.Second, "the console's chart of 25 requests", func() bool { return web.chartAllowed(k1.ID) == 25 })
	totals, err := s.owner.AppUsage(context.Background(), a.ID, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(totals.Keys) != 2 {
		t.Fatalf("the app's usage lists %+v; want k1 and k2 alone", totals.Keys)
	}
	if u := s.keyUsage(other.ID); u.Total() != 0 {
		t.Fatalf("another app's key, refused here, counted %+v", u)
	}
	keys, err := s.owner.ListAppKeys(context.Background(), a.ID, client.StateAny)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > time.Minute {
			t.Errorf("key %s: Last Used %v after requests a moment ago", k.Name, k.LastUsedAt)
		}
	}

	// Reloads: the same settings (the reporter stays), then a long
	// interval (a new reporter; the old one reports at its cleanup).
	s.sendN(site, k1.PlainKey, 10)
	s.load(s.ks.URL, site)
	s.sendN(site, k1.PlainKey, 10)
	long := site
	long.Auth = []string{"usage_interval 1h"}
	s.load(s.ks.URL, long)
	s.sendN(long, k1.PlainKey, 10)
	s.unload() // the 1h reporter reports at shutdown
	waitFor(t, 15*time.Second, "usage of 55 requests", func() bool { return s.keyUsage(k1.ID).Allowed >= 55 })
	if got := s.keyUsage(k1.ID); got.Allowed != 55 || got.RateLimited != 0 || got.Forbidden != 0 {
		t.Fatalf("after reloads and shutdown: %+v, want exactly 55 allowed", got)
	}
	if d := metric(adminMetrics(t), "appkey_auth_usage_dropped_total", "app", a.ID); d != 0 {
		t.Fatalf("%v requests dropped with the key service up", d)
	}
}
