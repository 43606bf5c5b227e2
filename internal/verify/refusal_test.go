package verify

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestValidAnswerCheckedBySidecar: the engine admits only what it checks
// itself. A key service that calls a key valid for another app, past its
// expiry by the engine's clock, or without an expiry gets a refusal, and
// the answer is not cached: the next request asks again.
func TestValidAnswerCheckedBySidecar(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	for _, tc := range []struct {
		name    string
		app     string
		expires time.Time
		want    Code
	}{
		{"another app", "app_other", now.Add(time.Hour), CodeWrongApp},
		{"expired a second ago", testApp, now.Add(-time.Second), CodeExpired},
		{"expires this very instant", testApp, now, CodeExpired},
		{"no expiry", testApp, time.Time{}, CodeExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newFakeService()
			e := newTestEngine(t, Config{Now: clk.Now}, svc, nil)
			key := newKey(t)
			svc.setResult(key, Result{Valid: true, Code: CodeValid, KeyID: "key_lie", AppID: tc.app, ExpiresAt: tc.expires})
			for i := 1; i <= 2; i++ {
				d, err := e.Check(context.Background(), key)
				if err != nil || d.Valid || d.Code != tc.want {
					t.Fatalf("request %d: %+v, %v; want refused as %s", i, d, err, tc.want)
				}
				if n := svc.callsFor(key); n != i {
					t.Fatalf("request %d made %d calls in all; want %d (the refusal must not be cached)", i, n, i)
				}
			}
			if s := e.Stats(); s != (Stats{}) {
				t.Fatalf("cache holds %+v; want nothing", s)
			}
			if _, ok := e.Cached(key); ok {
				t.Fatal("Cached admits the key")
			}
		})
	}
}

// TestRefusedAnswerDropsOlderValidEntry: a key cached as valid that the key
// service now calls valid for another app is dropped, so that no later
// outage serves the old entry stale.
func TestRefusedAnswerDropsOlderValidEntry(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Minute, StaleIfError: time.Hour, BreakerThreshold: 1000, Now: clk.Now}, svc, nil)
	key := svc.addKey(t, testApp, "key_moved", clk.Now().Add(24*time.Hour))
	ctx := context.Background()
	if d, err := e.Check(ctx, key); err != nil || !d.Valid {
		t.Fatalf("setup: %+v, %v", d, err)
	}
	clk.Add(2 * time.Minute) // past cache_ttl: the next check asks
	svc.setResult(key, Result{Valid: true, Code: CodeValid, KeyID: "key_moved", AppID: "app_other", ExpiresAt: clk.Now().Add(time.Hour)})
	if d, err := e.Check(ctx, key); err != nil || d.Valid || d.Code != CodeWrongApp {
		t.Fatalf("after the lie: %+v, %v; want WRONG_APP", d, err)
	}
	svc.setErr(errDown)
	if d, err := e.Check(ctx, key); !errors.Is(err, ErrUnavailable) || d.Valid {
		t.Fatalf("key service down: %+v, %v; want unavailable, not the old entry served stale", d, err)
	}
}

// TestCachedNeverPastKeyExpiry: a cached valid answer stops at the key's
// own expiry on every path that reads the cache: Cached (the throttled
// client's way in), a fresh hit, and the stale-if-error fallback, even when
// the expiry passes while the key service is being asked.
func TestCachedNeverPastKeyExpiry(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Minute, StaleIfError: time.Hour, BreakerThreshold: 1000, Now: clk.Now}, svc, nil)
	ctx := context.Background()
	expiry := clk.Now().Add(90 * time.Second)
	key := svc.addKey(t, testApp, "key_short", expiry)
	if d, err := e.Check(ctx, key); err != nil || !d.Valid {
		t.Fatalf("setup: %+v, %v", d, err)
	}
	if d, ok := e.Cached(key); !ok || d.ExpiresAt.After(expiry) {
		t.Fatalf("Cached before expiry: %+v, %t; want valid, never later than the key's expiry", d, ok)
	}

	// Past cache_ttl, before the expiry: the check asks; the expiry passes
	// while the (failing) call is out, and the fallback must see it.
	clk.Add(80 * time.Second)
	svc.mu.Lock()
	svc.hold, svc.entered = make(chan struct{}), make(chan struct{}, 1)
	svc.err = errDown
	svc.mu.Unlock()
	type outcome struct {
		d   Decision
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		d, err := e.Check(ctx, key)
		done <- outcome{d, err}
	}()
	<-svc.entered
	clk.Add(20 * time.Second) // 100s: the key expired at 90s
	close(svc.hold)
	if o := <-done; o.d.Valid || o.err == nil && o.d.Code != CodeExpired {
		t.Fatalf("fallback after the expiry: %+v, %v; want no admission", o.d, o.err)
	}
	if _, ok := e.Cached(key); ok {
		t.Fatal("Cached admits the key after its expiry")
	}
	svc.mu.Lock()
	svc.hold, svc.entered = nil, nil
	svc.mu.Unlock()
	if d, err := e.Check(ctx, key); d.Valid {
		t.Fatalf("Check after the expiry: %+v, %v; want no admission", d, err)
	}
}
