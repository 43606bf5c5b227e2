package verify

import (
	"context"
	"testing"
	"time"
)

// expiryChanged is a key.expiry_changed event of the test app.
func expiryChanged(seq int64, keyID string, expires time.Time) Event {
	return Event{Seq: seq, Type: EventKeyExpiryChanged, KeyID: keyID, AppID: testApp, At: expires.Add(-time.Hour), ExpiresAt: &expires}
}

// Attack: a sidecar with a long cache_ttl keeps admitting a rolled key
// after the overlap's end. key.expiry_changed shortens the cached entry,
// so the old key is refused from the new expiry on, with no call; an event
// never lengthens an entry; one without an expiry drops the entry.
func TestFeedShortensCachedExpiry(t *testing.T) {
	noGoroutineLeak(t)
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Hour, Now: clk.Now}, svc, nil)
	ctx := context.Background()
	rolled := svc.addKey(t, testApp, "key_rolled", time.Time{})
	soon := svc.addKey(t, testApp, "key_soon", clk.Now().Add(10*time.Minute))
	odd := svc.addKey(t, testApp, "key_odd", time.Time{})

	src := newScriptedSource()
	src.push(page(100))
	f := startFeed(t, src, clk, nil)
	defer e.Follow(f)()
	eventually(t, "feed up", func() bool { return f.Stats().Up })
	for _, k := range []string{rolled, soon, odd} {
		if d, _ := e.Check(ctx, k); !d.Valid {
			t.Fatalf("setup: %+v", d)
		}
	}
	newExp := clk.Now().Add(2 * time.Second)
	noEvent := Event{Seq: 103, Type: EventKeyExpiryChanged, KeyID: "key_odd", AppID: testApp, At: clk.Now()}
	src.push(page(103, expiryChanged(101, "key_rolled", newExp), expiryChanged(102, "key_soon", clk.Now().Add(time.Hour)), noEvent))
	eventually(t, "events applied", func() bool { return f.Stats().LastSeq == 103 })

	d, _ := e.Check(ctx, rolled)
	if !d.Valid || d.Source != SourceCache || !d.ExpiresAt.Equal(newExp) {
		t.Fatalf("rolled key inside its overlap: %+v; want valid from the cache until %v", d, newExp)
	}
	if d, _ := e.Check(ctx, soon); !d.Valid || !d.ExpiresAt.Equal(clk.Now().Add(10*time.Minute)) {
		t.Fatalf("an event lengthened a cached expiry: %+v", d)
	}
	calls := svc.callsFor(odd)
	if d, _ := e.Check(ctx, odd); !d.Valid || d.Source != SourceService || svc.callsFor(odd) != calls+1 {
		t.Fatalf("an expiry change without an expiry kept the entry: %+v", d)
	}

	clk.Add(2 * time.Second) // the overlap ends
	calls = svc.callsFor(rolled)
	if d, _ := e.Check(ctx, rolled); d.Valid || d.Code != CodeExpired || svc.callsFor(rolled) != calls {
		t.Fatalf("rolled key after its new expiry: %+v (calls %d → %d); want EXPIRED with no call", d, calls, svc.callsFor(rolled))
	}
}

// Attack: the key service's answer, read just before the roll committed,
// lands after the feed applied the new expiry, and is cached with the old,
// longer one. It answers its own request but is not kept.
func TestExpiryChangeDuringCallKeepsNothing(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	svc.hold = make(chan struct{})
	svc.entered = make(chan struct{}, 1)
	e := newTestEngine(t, Config{CacheTTL: time.Hour, Now: clk.Now}, svc, nil)
	key := svc.addKey(t, testApp, "key_r", time.Time{})
	done := make(chan Decision)
	go func() {
		d, _ := e.Check(context.Background(), key)
		done <- d
	}()
	<-svc.entered
	e.Shorten("key_r", clk.Now().Add(time.Second))
	close(svc.hold)
	<-done
	svc.mu.Lock()
	svc.hold = nil
	svc.mu.Unlock()
	e.Check(context.Background(), key)
	if n := svc.callsFor(key); n != 2 {
		t.Fatalf("%d calls; the answer older than the expiry change was cached", n)
	}
}

// Attack: the key service goes down after a roll; stale-if-error serves
// the rolled key past its new expiry. It never does: the key's own expiry
// ends every stale answer.
func TestStaleNeverPastShortenedExpiry(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Minute, StaleIfError: time.Hour, BreakerThreshold: 1000, Now: clk.Now}, svc, nil)
	ctx := context.Background()
	key := svc.addKey(t, testApp, "key_s", time.Time{})
	if d, _ := e.Check(ctx, key); !d.Valid {
		t.Fatal("setup")
	}
	e.Shorten("key_s", clk.Now().Add(90*time.Second))
	svc.setErr(errDown)
	clk.Add(80 * time.Second) // past cache_ttl, inside stale_if_error and the new expiry
	if d, err := e.Check(ctx, key); err != nil || !d.Valid || d.Source != SourceStale {
		t.Fatalf("inside the overlap, key service down: %+v, %v; want stale valid", d, err)
	}
	clk.Add(10 * time.Second) // the new expiry
	if d, err := e.Check(ctx, key); err != nil || d.Valid || d.Code != CodeExpired {
		t.Fatalf("past the new expiry, key service down: %+v, %v; want EXPIRED", d, err)
	}
}

// An overlap ends on a whole second (the key service rounds it up); the
// engine counts in whole seconds from a base on a whole second, so such an
// expiry is kept exactly, not cut short by up to a second.
func TestWholeSecondExpiryKeptExactly(t *testing.T) {
	clk := newClock()
	clk.Add(700 * time.Millisecond) // the engine starts mid-second
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Hour, Now: clk.Now}, svc, nil)
	exp := clk.Now().Truncate(time.Second).Add(3 * time.Second)
	key := svc.addKey(t, testApp, "key_w", exp)
	if d, _ := e.Check(context.Background(), key); !d.Valid || !d.ExpiresAt.Equal(exp) {
		t.Fatalf("expiry %v kept as %v", exp, d.ExpiresAt)
	}
	clk.Add(exp.Add(-time.Millisecond).Sub(clk.Now()))
	if d, _ := e.Check(context.Background(), key); !d.Valid {
		t.Fatalf("a millisecond before its expiry: %+v", d)
	}
}
