package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
)

const (
	challenge         = `Bearer realm="appkeys"`
	challengeBadToken = `Bearer realm="appkeys", error="invalid_token"`
)

// TestAnswers walks every answer of DESIGN.md through a real Caddy, the real
// key service and a real upstream.
func TestAnswers(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	appA, appB, appD := s.app("a"), s.app("b"), s.app("doomed")
	siteA, siteD := s.site(appA), s.site(appD)
	s.load(s.ks.URL, siteA, siteD)

	valid := s.key(nil, appA.ID, time.Now().Add(time.Hour))
	other := s.key(nil, appB.ID, time.Now().Add(time.Hour))
	revoked := s.key(nil, appA.ID, time.Now().Add(time.Hour))
	if err := s.owner.RevokeKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	member, err := s.owner.CreateUser(ctx, client.CreateUserRequest{Email: "leaver@example.com", Role: client.RoleMember})
	if err != nil {
		t.Fatal(err)
	}
	memberClient, _ := client.New(s.ks.URL, member.Token)
	byLeaver := s.key(memberClient, appA.ID, time.Now().Add(time.Hour))
	if err := s.owner.DeleteUser(ctx, member.ID); err != nil {
		t.Fatal(err)
	}
	ofDoomed := s.key(nil, appD.ID, time.Now().Add(time.Hour))
	if err := s.owner.DeleteApp(ctx, appD.ID); err != nil {
		t.Fatal(err)
	}
	unknown, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		for _, hdr := range [][]string{
			{"X-API-Key", valid.PlainKey},
			{"Authorization", "Bearer " + valid.PlainKey},
			{"Authorization", "bearer " + valid.PlainKey},
			{"X-API-Key", valid.PlainKey, "Authorization", "Bearer " + valid.PlainKey},
		} {
			spoofed := append(hdr, "X-Appkeys-Key-Id", "key_forged", "X-Appkeys-App-Id", appB.ID,
				"x-appkeys-role", "admin", "X-APPKEYS-KEY-ID", "key_forged2")
			a := s.get(siteA, spoofed...)
			if a.status != 200 || a.body != "hello "+valid.ID {
				t.Fatalf("%v: %d %q", hdr[0], a.status, a.body)
			}
		}
		seen := s.upstream.headers()
		if len(seen) != 4 {
			t.Fatalf("upstream saw %d requests, want 4", len(seen))
		}
		for _, h := range seen {
			for name, vs := range h {
				for _, v := range vs {
					if strings.Contains(v, valid.PlainKey) || strings.Contains(v, apikey.Prefix) {
						t.Errorf("upstream saw the key in %s", name)
					}
				}
				if strings.HasPrefix(name, "X-Appkeys-") && name != "X-Appkeys-Key-Id" && name != "X-Appkeys-App-Id" {
					t.Errorf("upstream saw the client's %s: %v", name, vs)
				}
			}
			if got := h.Values("X-Appkeys-Key-Id"); len(got) != 1 || got[0] != valid.ID {
				t.Errorf("X-Appkeys-Key-Id %v, want [%s]", got, valid.ID)
			}
			if got := h.Values("X-Appkeys-App-Id"); len(got) != 1 || got[0] != appA.ID {
				t.Errorf("X-Appkeys-App-Id %v, want [%s]", got, appA.ID)
			}
		}
	})

	t.Run("no key", func(t *testing.T) {
		for _, hdr := range [][]string{nil, {"X-Appkeys-Key-Id", valid.ID}, {"Authorization", "Basic dXNlcjpwYXNz"}} {
			a := s.get(siteA, hdr...)
			if a.status != 401 || a.header.Get("WWW-Authenticate") != challenge {
				t.Errorf("%v: %d %q", hdr, a.status, a.header.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("refused alike", func(t *testing.T) {
		cases := []struct {
			name, reason string
			site         Site
			key          string
		}{
			{"malformed", "malformed", siteA, "cak_nope"},
			{"bad checksum", "malformed", siteA, valid.PlainKey[:len(valid.PlainKey)-1] + flip(valid.PlainKey[len(valid.PlainKey)-1])},
			{"not a key", "malformed", siteA, "hunter2"},
			{"unknown", "not_found", siteA, unknown},
			{"revoked", "revoked", siteA, revoked.PlainKey},
			{"orphaned: creator deleted", "orphaned", siteA, byLeaver.PlainKey},
			{"orphaned: app deleted", "orphaned", siteD, ofDoomed.PlainKey},
			{"another app's key", "wrong_app", siteA, other.PlainKey},
		}
		before := adminMetrics(t)
		hits := len(s.upstream.headers())
		var first *answer
		for _, c := range cases {
			for _, hdr := range [][]string{{"X-API-Key", c.key}, {"Authorization", "Bearer " + c.key}} {
				a := s.get(c.site, hdr...)
				if a.status != 401 || a.header.Get("WWW-Authenticate") != challengeBadToken {
					t.Errorf("%s via %s: %d %q %q", c.name, hdr[0], a.status, a.header.Get("WWW-Authenticate"), a.body)
				}
				if first == nil {
					first = &a
				} else if a.body != first.body || a.header.Get("Content-Type") != first.header.Get("Content-Type") {
					t.Errorf("%s: body %q (%s), want the same as every refusal: %q (%s)",
						c.name, a.body, a.header.Get("Content-Type"), first.body, first.header.Get("Content-Type"))
				}
			}
		}
		if n := len(s.upstream.headers()); n != hits {
			t.Errorf("refused requests reached the upstream (%d)", n-hits)
		}
		// The client cannot tell them apart; the metrics can.
		after := adminMetrics(t)
		for _, c := range cases {
			site := c.site
			d := metric(after, "appkey_auth_requests_total", "app", site.App, "reason", c.reason) -
				metric(before, "appkey_auth_requests_total", "app", site.App, "reason", c.reason)
			if d < 2 {
				t.Errorf("%s: appkey_auth_requests_total{reason=%q} grew by %v, want at least 2", c.name, c.reason, d)
			}
		}
	})

	t.Run("expired", func(t *testing.T) {
		// A key a second from its expiry: used (and cached) now, then asked
		// for until refused. No 200 may answer a request sent after it
		// expired, whether the sidecar cached it or not.
		expires := time.Now().Add(1200 * time.Millisecond)
		k := s.key(nil, appA.ID, expires)
		expires = k.ExpiresAt
		if a := s.get(siteA, "X-API-Key", k.PlainKey); a.status != 200 {
			t.Fatalf("before expiry: %d", a.status)
		}
		fresh := s.key(nil, appA.ID, expires) // never shown to the sidecar before it expires
		for {
			sent := time.Now()
			a := s.get(siteA, "X-API-Key", k.PlainKey)
			if a.status == 401 {
				break
			}
			if a.status != 200 {
				t.Fatalf("expiring key: %d", a.status)
			}
			if sent.After(expires) {
				t.Fatalf("a request sent %s after the key expired got 200", sent.Sub(expires))
			}
			if time.Since(expires) > 5*time.Second {
				t.Fatal("the expired key is still accepted")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for time.Now().Before(expires) {
			time.Sleep(expires.Sub(time.Now()) + 10*time.Millisecond)
		}
		for _, key := range []string{k.PlainKey, fresh.PlainKey} {
			if a := s.get(siteA, "X-API-Key", key); a.status != 401 || a.header.Get("WWW-Authenticate") != challengeBadToken {
				t.Errorf("expired key: %d %q", a.status, a.header.Get("WWW-Authenticate"))
			}
		}
		if n := metric(adminMetrics(t), "appkey_auth_requests_total", "app", appA.ID, "reason", "expired"); n < 2 {
			t.Errorf("appkey_auth_requests_total{reason=\"expired\"} = %v, want at least 2", n)
		}
	})
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestOneVerifyForConcurrentMisses: 1,000 concurrent requests with one
// uncached key make exactly one verify call, counted by the key service.
func TestOneVerifyForConcurrentMisses(t *testing.T) {
	s := newStack(t)
	a := s.app("busy")
	site := s.site(a)
	s.load(s.ks.URL, site)
	// The feed's start from its head purges the cache: an answer that
	// lands across it is not kept, and the misses after it ask again.
	s.waitFeedStarted(a)
	k := s.key(nil, a.ID, time.Now().Add(time.Hour))

	const n = 1000
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	before := s.verifyCalls()
	sidecarBefore := metric(adminMetrics(t), "appkey_auth_keyservice_requests_total", "app", a.ID)

	var wg sync.WaitGroup
	statuses := make([]int, n)
	errs := make([]error, n)
	startGate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, site.URL(), nil)
			req.Header.Set("X-API-Key", k.PlainKey)
			<-startGate
			resp, err := hc.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	close(startGate)
	wg.Wait()
	counts := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			counts[errs[i].Error()]++
		} else {
			counts[strconv.Itoa(statuses[i])]++
		}
	}
	if counts["200"] != n {
		t.Fatalf("answers: %v, want %d× 200", counts, n)
	}
	if d := s.verifyCalls() - before; d != 1 {
		t.Errorf("the key service counted %v verify calls, want 1", d)
	}
	if d := metric(adminMetrics(t), "appkey_auth_keyservice_requests_total", "app", a.ID) - sidecarBefore; d != 1 {
		t.Errorf("the sidecar counted %v key-service calls, want 1", d)
	}
}

// TestKeyServiceDown: a cached valid key outlives the key service until
// stale_if_error ends, then 503; an unknown key gets 503 at once; the key
// service back, the sidecar recovers on its own.
func TestKeyServiceDown(t *testing.T) {
	s := newStack(t)
	a := s.app("resilient")
	const ttl, stale, timeout = time.Second, 2 * time.Second, 2 * time.Second
	site := s.site(a, "cache_ttl 1s", "stale_if_error 2s", "timeout 2s")
	s.load(s.ks.URL, site)
	k := s.key(nil, a.ID, time.Now().Add(time.Hour))
	if got := s.get(site, "X-API-Key", k.PlainKey); got.status != 200 {
		t.Fatalf("before: %d", got.status)
	}
	cachedAt := time.Now()
	s.ks.Stop()

	unknown, _ := apikey.Generate()
	start := time.Now()
	got := s.get(site, "X-API-Key", unknown)
	if got.status != 503 {
		t.Fatalf("unknown key, key service down: %d, want 503", got.status)
	}
	if took := time.Since(start); took >= timeout {
		t.Errorf("unknown key waited %s for its 503: the timeout, not at once", took)
	}
	if ra, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds", got.header.Get("Retry-After"))
	}

	// The cached key: 200 (fresh, then stale) until stale_if_error ends.
	var oks int
	for {
		sent := time.Now()
		got := s.get(site, "X-API-Key", k.PlainKey)
		if got.status == 503 {
			if sent.Sub(cachedAt) < ttl {
				t.Errorf("503 only %s after caching, within cache_ttl", sent.Sub(cachedAt))
			}
			if got.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			break
		}
		if got.status != 200 {
			t.Fatalf("cached key, key service down: %d", got.status)
		}
		oks++
		if time.Since(cachedAt) > ttl+stale+5*time.Second {
			t.Fatal("still 200 long after stale_if_error")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := adminMetrics(t)
	if n := metric(m, "appkey_auth_stale_served_total", "app", a.ID); n < 1 {
		t.Errorf("appkey_auth_stale_served_total = %v after %d answers with the key service down", n, oks)
	}
	if n := metric(m, "appkey_auth_requests_total", "app", a.ID, "result", "unavailable"); n < 2 {
		t.Errorf("appkey_auth_requests_total{result=\"unavailable\"} = %v", n)
	}

	// Back: same address, same data, same Caddy.
	s.ks.Restart()
	s.waitStatus(site, k.PlainKey, 200, 10*time.Second, 503)
	s.waitStatus(site, unknown, 401, 10*time.Second, 503)
	later := s.key(nil, a.ID, time.Now().Add(time.Hour))
	if got := s.get(site, "X-API-Key", later.PlainKey); got.status != 200 {
		t.Errorf("a key made after the restart: %d", got.status)
	}
}
