package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCheckMalformedMakesNoCall(t *testing.T) {
	svc := newFakeService()
	e := newTestEngine(t, Config{}, svc, nil)
	good := newKey(t)
	for _, k := range []string{"", "cak_", "nope", good[:len(good)-1] + "!", good[:10] + other(good[10]) + good[11:], good + "0"} {
		d, err := e.Check(context.Background(), k)
		if err != nil || d.Valid || d.Code != CodeMalformed || d.Source != SourceLocal {
			t.Errorf("Check(%q) = %+v, %v; want local MALFORMED", k, d, err)
		}
	}
	if n := svc.total.Load(); n != 0 {
		t.Fatalf("malformed keys made %d calls", n)
	}
}

// other is a base62 character that is not c, so a key with it in c's place
// fails its checksum (a fixed "x" left the key whole 1 time in 62).
func other(c byte) string {
	if c == 'x' {
		return "y"
	}
	return "x"
}

func TestCheckValidIsCachedUntilTTL(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	obs := &countObserver{}
	e := newTestEngine(t, Config{CacheTTL: time.Minute, Now: clk.Now}, svc, obs)
	key := svc.addKey(t, testApp, "key_1", time.Time{})

	d, err := e.Check(context.Background(), key)
	if err != nil || !d.Valid || d.Source != SourceService || d.KeyID != "key_1" || d.KeyName != "name of key_1" || d.AppID != testApp {
		t.Fatalf("first Check = %+v, %v", d, err)
	}
	clk.Add(59 * time.Second)
	d, err = e.Check(context.Background(), key)
	if err != nil || !d.Valid || d.Source != SourceCache || d.KeyID != "key_1" || d.KeyName != "name of key_1" {
		t.Fatalf("cached Check = %+v, %v", d, err)
	}
	if n := svc.callsFor(key); n != 1 {
		t.Fatalf("%d calls within cache_ttl; want 1", n)
	}
	clk.Add(time.Second)
	if d, _ = e.Check(context.Background(), key); d.Source != SourceService {
		t.Fatalf("after cache_ttl: source %s; want service", d.Source)
	}
	if n := svc.callsFor(key); n != 2 {
		t.Fatalf("%d calls after cache_ttl; want 2", n)
	}
	if obs.hits.Load() != 1 || obs.misses.Load() != 2 {
		t.Fatalf("hits %d misses %d; want 1 and 2", obs.hits.Load(), obs.misses.Load())
	}
}

func TestCheckNeverServesPastKeyExpiry(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Hour, Now: clk.Now}, svc, nil)
	key := svc.addKey(t, testApp, "key_exp", clk.Now().Add(10*time.Second))
	if d, _ := e.Check(context.Background(), key); !d.Valid {
		t.Fatalf("before expiry: %+v", d)
	}
	clk.Add(10 * time.Second)
	d, err := e.Check(context.Background(), key)
	if err != nil || d.Valid || d.Code != CodeExpired {
		t.Fatalf("at expiry: %+v, %v; want EXPIRED", d, err)
	}
	// The expiry is final and known: no call, now or while it is remembered.
	e.Check(context.Background(), key)
	if n := svc.callsFor(key); n != 1 {
		t.Fatalf("%d calls; want 1", n)
	}
}

func TestCheckWrongApp(t *testing.T) {
	svc := newFakeService()
	e := newTestEngine(t, Config{}, svc, nil)
	key := svc.addKey(t, "app_other", "key_o", time.Time{})
	for i := 0; i < 2; i++ {
		d, err := e.Check(context.Background(), key)
		if err != nil || d.Valid || d.Code != CodeWrongApp {
			t.Fatalf("Check = %+v, %v; want WRONG_APP", d, err)
		}
	}
	if e.Stats().ValidEntries != 0 {
		t.Fatal("another app's key was cached as valid")
	}
}

func TestCheckInvalidCachedForNegativeTTL(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{NegativeTTL: 10 * time.Second, Now: clk.Now}, svc, nil)
	key := newKey(t)
	for _, tc := range []struct {
		advance time.Duration
		calls   int
	}{{0, 1}, {9 * time.Second, 1}, {time.Second, 2}} {
		clk.Add(tc.advance)
		d, err := e.Check(context.Background(), key)
		if err != nil || d.Valid || d.Code != CodeNotFound {
			t.Fatalf("Check = %+v, %v", d, err)
		}
		if n := svc.callsFor(key); n != tc.calls {
			t.Fatalf("after +%s: %d calls, want %d", tc.advance, n, tc.calls)
		}
	}
}

func TestConcurrentMissesMakeOneCall(t *testing.T) {
	svc := newFakeService()
	svc.hold = make(chan struct{})
	e := newTestEngine(t, Config{}, svc, nil)
	key := svc.addKey(t, testApp, "key_c", time.Time{})

	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := e.Check(context.Background(), key)
			if err == nil && !d.Valid {
				err = fmt.Errorf("not valid: %+v", d)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	eventually(t, "the one call reached the service", func() bool { return svc.total.Load() >= 1 })
	close(svc.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := svc.total.Load(); got != 1 {
		t.Fatalf("%d concurrent requests made %d calls; want 1", n, got)
	}
}

func TestSharedCallSurvivesFirstCallerCancel(t *testing.T) {
	svc := newFakeService()
	svc.hold = make(chan struct{})
	svc.entered = make(chan struct{}, 1)
	e := newTestEngine(t, Config{}, svc, nil)
	key := svc.addKey(t, testApp, "key_s", time.Time{})

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := e.Check(ctx, key)
		first <- err
	}()
	<-svc.entered // the first caller's call is in flight
	second := make(chan Decision, 1)
	go func() {
		d, _ := e.Check(context.Background(), key)
		second <- d
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v; want its own cancellation", err)
	}
	close(svc.hold)
	if d := <-second; !d.Valid {
		t.Fatalf("second caller: %+v; the shared call died with the first caller", d)
	}
	if n := svc.total.Load(); n != 1 {
		t.Fatalf("%d calls; want 1", n)
	}
}

// A flood of distinct unknown keys must not evict valid keys, and each
// unknown key reaches the key service once within negative_ttl.
func TestUnknownKeyFloodEvictsNoValidKey(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 keys")
	}
	clk := newClock()
	svc := newFakeService()
	const valid, unknown = 1000, 100_000
	e := newTestEngine(t, Config{CacheSize: valid, NegativeSize: unknown, Now: clk.Now}, svc, nil)
	ctx := context.Background()
	good := make([]string, valid)
	for i := range good {
		good[i] = svc.addKey(t, testApp, fmt.Sprintf("key_%d", i), time.Time{})
		if d, err := e.Check(ctx, good[i]); err != nil || !d.Valid {
			t.Fatalf("valid key %d: %+v, %v", i, d, err)
		}
	}
	bad := make([]string, unknown)
	for i := range bad {
		bad[i] = newKey(t)
	}
	for round := 0; round < 2; round++ {
		for _, k := range bad {
			if d, err := e.Check(ctx, k); err != nil || d.Code != CodeNotFound {
				t.Fatalf("unknown key: %+v, %v", d, err)
			}
		}
		clk.Add(time.Second) // still well within negative_ttl
	}
	if got := svc.total.Load(); got != valid+unknown {
		t.Fatalf("%d calls; want %d (each key once)", got, valid+unknown)
	}
	for i, k := range good {
		if d, _ := e.Check(ctx, k); d.Source != SourceCache {
			t.Fatalf("valid key %d was evicted by the flood (source %s)", i, d.Source)
		}
	}
}

func TestStaleIfError(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	obs := &countObserver{}
	e := newTestEngine(t, Config{CacheTTL: time.Minute, StaleIfError: 5 * time.Minute, BreakerThreshold: 1000, Now: clk.Now}, svc, obs)
	key := svc.addKey(t, testApp, "key_st", time.Time{})
	expiring := svc.addKey(t, testApp, "key_st2", clk.Now().Add(3*time.Minute))
	unknown := newKey(t)
	ctx := context.Background()
	for _, k := range []string{key, expiring} {
		if d, _ := e.Check(ctx, k); !d.Valid {
			t.Fatal("setup")
		}
	}
	svc.setErr(errDown)

	clk.Add(2 * time.Minute) // past cache_ttl, inside stale_if_error
	d, err := e.Check(ctx, key)
	if err != nil || !d.Valid || d.Source != SourceStale || d.KeyID != "key_st" {
		t.Fatalf("inside stale window: %+v, %v; want stale valid", d, err)
	}
	if obs.stale.Load() != 1 {
		t.Fatalf("stale served counted %d; want 1", obs.stale.Load())
	}
	if _, err := e.Check(ctx, unknown); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unknown key while down: %v; want ErrUnavailable", err)
	}
	clk.Add(time.Minute) // the second key's own expiry passes
	if d, err := e.Check(ctx, expiring); err != nil || d.Valid || d.Code != CodeExpired {
		t.Fatalf("stale past key expiry: %+v, %v; want EXPIRED", d, err)
	}
	clk.Add(3 * time.Minute) // 6m after the answer: past cache_ttl + stale_if_error
	var ue *UnavailableError
	if _, err := e.Check(ctx, key); !errors.As(err, &ue) || ue.RetryAfter <= 0 {
		t.Fatalf("past stale window: %v; want *UnavailableError with RetryAfter", err)
	}
	svc.setErr(nil)
	if d, err := e.Check(ctx, key); err != nil || !d.Valid || d.Source != SourceService {
		t.Fatalf("service back: %+v, %v", d, err)
	}
}

func TestBreakerFailsFastAndRecovers(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{BreakerThreshold: 3, BreakerCooldown: 2 * time.Second, Now: clk.Now}, svc, nil)
	ctx := context.Background()
	svc.setErr(errDown)
	for i := 0; i < 3; i++ {
		if _, err := e.Check(ctx, newKey(t)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	before := svc.total.Load()
	var ue *UnavailableError
	_, err := e.Check(ctx, newKey(t))
	if !errors.As(err, &ue) || !errors.Is(err, errBreakerOpen) || ue.RetryAfter != 2*time.Second {
		t.Fatalf("open breaker: %v; want breaker error with RetryAfter 2s", err)
	}
	if svc.total.Load() != before {
		t.Fatal("open breaker let a call through")
	}
	// Half-open: one probe goes out; it fails, so the breaker reopens.
	clk.Add(2 * time.Second)
	e.Check(ctx, newKey(t))
	if svc.total.Load() != before+1 {
		t.Fatalf("half-open: %d calls; want one probe", svc.total.Load()-before)
	}
	if _, err := e.Check(ctx, newKey(t)); !errors.Is(err, errBreakerOpen) || svc.total.Load() != before+1 {
		t.Fatalf("after failed probe: %v; want open again", err)
	}
	// Service back: the next probe closes the breaker by itself.
	svc.setErr(nil)
	clk.Add(2 * time.Second)
	key := svc.addKey(t, testApp, "key_b", time.Time{})
	if d, err := e.Check(ctx, key); err != nil || !d.Valid {
		t.Fatalf("probe: %+v, %v", d, err)
	}
	if d, err := e.Check(ctx, newKey(t)); err != nil || d.Code != CodeNotFound {
		t.Fatalf("after recovery: %+v, %v", d, err)
	}
}

func TestEvictDuringCallKeepsNothing(t *testing.T) {
	svc := newFakeService()
	svc.hold = make(chan struct{})
	svc.entered = make(chan struct{}, 1)
	e := newTestEngine(t, Config{}, svc, nil)
	key := svc.addKey(t, testApp, "key_r", time.Time{})
	done := make(chan Decision)
	go func() {
		d, _ := e.Check(context.Background(), key)
		done <- d
	}()
	<-svc.entered
	// The revocation lands while the (now outdated) VALID answer is in flight.
	e.Evict("key_r", CodeRevoked)
	close(svc.hold)
	<-done
	svc.setResult(key, Result{Code: CodeRevoked})
	svc.hold = nil
	if d, _ := e.Check(context.Background(), key); d.Valid {
		t.Fatal("an answer older than the revocation was cached")
	}
}

func TestEvictAndPurge(t *testing.T) {
	svc := newFakeService()
	e := newTestEngine(t, Config{}, svc, nil)
	ctx := context.Background()
	k1 := svc.addKey(t, testApp, "key_1", time.Time{})
	k2 := svc.addKey(t, testApp, "key_2", time.Time{})
	e.Check(ctx, k1)
	e.Check(ctx, k2)
	if !e.Evict("key_1", CodeRevoked) {
		t.Fatal("Evict found no key_1")
	}
	d, _ := e.Check(ctx, k1)
	if d.Valid || d.Code != CodeRevoked || svc.callsFor(k1) != 1 {
		t.Fatalf("revoked key: %+v after %d calls; want REVOKED from cache", d, svc.callsFor(k1))
	}
	if d, _ := e.Check(ctx, k2); d.Source != SourceCache {
		t.Fatal("evicting key_1 dropped key_2")
	}
	e.Purge()
	if s := e.Stats(); s.ValidEntries != 0 || s.InvalidEntries != 0 {
		t.Fatalf("after purge: %+v", s)
	}
	if e.Evict("key_2", CodeRevoked) {
		t.Fatal("index kept key_2 after purge")
	}
}

func TestLRUEvictionKeepsIndexInStep(t *testing.T) {
	svc := newFakeService()
	obs := &countObserver{}
	e := newTestEngine(t, Config{CacheSize: 2}, svc, obs)
	ctx := context.Background()
	keys := []string{svc.addKey(t, testApp, "key_a", time.Time{}), svc.addKey(t, testApp, "key_b", time.Time{}), svc.addKey(t, testApp, "key_c", time.Time{})}
	for _, k := range keys {
		e.Check(ctx, k)
	}
	if obs.evicted.Load() != 1 {
		t.Fatalf("evictions %d; want 1", obs.evicted.Load())
	}
	if e.Evict("key_a", CodeRevoked) {
		t.Fatal("index still names the evicted key_a")
	}
	for _, id := range []string{"key_b", "key_c"} {
		if !e.Evict(id, CodeRevoked) {
			t.Fatalf("index lost %s", id)
		}
	}
	if s := e.Stats(); s.ValidEntries != 0 {
		t.Fatalf("%d valid entries left; want 0", s.ValidEntries)
	}
}

func TestFeedDownRevalidates(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: 10 * time.Minute, FeedDownRevalidate: 30 * time.Second, Now: clk.Now}, svc, nil)
	f, err := NewFeed(FeedConfig{App: testApp, Now: clk.Now}, &scriptedSource{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := e.Follow(f)
	defer stop()
	f.markUp()
	ctx := context.Background()
	key := svc.addKey(t, testApp, "key_fd", time.Time{})
	e.Check(ctx, key)

	clk.Add(time.Minute) // feed up: the long cache_ttl holds
	if d, _ := e.Check(ctx, key); d.Source != SourceCache {
		t.Fatalf("feed up: source %s; want cache", d.Source)
	}
	f.markDown()
	clk.Add(31 * time.Second) // the feed has been down past the bound
	svc.setResult(key, Result{Code: CodeRevoked})
	if d, _ := e.Check(ctx, key); d.Valid || d.Code != CodeRevoked {
		t.Fatalf("feed down: %+v; want the revocation seen by revalidation", d)
	}
	if n := svc.callsFor(key); n != 2 {
		t.Fatalf("%d calls; want 2", n)
	}
}

func TestEngineCloseWaitsForCalls(t *testing.T) {
	noGoroutineLeak(t)
	svc := newFakeService()
	svc.hold = make(chan struct{})
	svc.entered = make(chan struct{}, 1)
	e, err := NewEngine(Config{App: testApp, Timeout: time.Minute}, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go e.Check(ctx, newKey(t))
	<-svc.entered
	cancel()
	closed := make(chan int64)
	go func() { e.Close(); closed <- svc.returned.Load() }()
	close(svc.hold)
	if n := <-closed; n != 1 {
		t.Fatal("Close returned while a call was in flight")
	}
	if _, err := e.Check(context.Background(), newKey(t)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check after Close: %v", err)
	}
}
