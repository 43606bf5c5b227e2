package verify

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/testclock"
	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

const testApp = "app_test"

// newClock is the tests' settable clock, at a fixed start.
func newClock() *testclock.Clock {
	return testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
}

// fakeService is an in-process key service: answers come from a map of
// keys, every call is counted, and calls can be held or failed.
type fakeService struct {
	mu       sync.Mutex
	keys     map[string]Result
	calls    map[string]int
	total    atomic.Int64
	returned atomic.Int64 // calls that have returned
	active   atomic.Int64 // calls in progress
	peak     atomic.Int64 // the most calls ever in progress at once
	err      error
	hold     chan struct{} // when non-nil, calls wait for it to close
	entered  chan struct{} // when non-nil, receives once per call entering
}

func newFakeService() *fakeService {
	return &fakeService{keys: make(map[string]Result), calls: make(map[string]int)}
}

func (f *fakeService) Verify(ctx context.Context, key string) (Result, error) {
	f.total.Add(1)
	defer f.returned.Add(1)
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
	}
	f.mu.Lock()
	f.calls[key]++
	hold, entered, err := f.hold, f.entered, f.err
	r, ok := f.keys[key]
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{Code: CodeNotFound}, nil
	}
	return r, nil
}

func (f *fakeService) setErr(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }
func (f *fakeService) callsFor(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

// addKey makes a new valid key of app known to the service. Every key
// expires; a zero expires stands for one far beyond any test's clock.
func (f *fakeService) addKey(t testing.TB, app, id string, expires time.Time) string {
	t.Helper()
	if expires.IsZero() {
		expires = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	k := newKey(t)
	f.mu.Lock()
	f.keys[k] = Result{Valid: true, Code: CodeValid, KeyID: id, KeyName: "name of " + id, AppID: app, ExpiresAt: expires}
	f.mu.Unlock()
	return k
}

func (f *fakeService) setResult(key string, r Result) {
	f.mu.Lock()
	f.keys[key] = r
	f.mu.Unlock()
}

func newKey(t testing.TB) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var errDown = errors.New("connection refused")

func newTestEngine(t testing.TB, cfg Config, svc KeyService, obs Observer) *Engine {
	t.Helper()
	if cfg.App == "" {
		cfg.App = testApp
	}
	e, err := NewEngine(cfg, svc, obs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// countObserver counts what the engine reports.
type countObserver struct {
	NopObserver
	hits, misses, evicted, stale, revocations atomic.Int64
	queued                                    atomic.Int64
	lastSeq                                   atomic.Int64
}

func (o *countObserver) CacheHit()          { o.hits.Add(1) }
func (o *countObserver) CacheMiss()         { o.misses.Add(1) }
func (o *countObserver) CacheEvicted()      { o.evicted.Add(1) }
func (o *countObserver) StaleServed()       { o.stale.Add(1) }
func (o *countObserver) RevocationApplied() { o.revocations.Add(1) }
func (o *countObserver) VerifyQueued()      { o.queued.Add(1) }
func (o *countObserver) EventApplied(seq int64, _ time.Duration) {
	o.lastSeq.Store(seq)
}

// eventually polls cond until it holds or a generous deadline passes. It
// waits for something asynchronous to happen; it asserts nothing about speed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// noGoroutineLeak records the goroutine count and, at cleanup, waits for it
// to come back down.
func noGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				n := runtime.Stack(buf, true)
				t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// clientOf is a Client of the stand-in key service srv, closed with the test.
func clientOf(t *testing.T, srv *verifytest.Server) *Client {
	t.Helper()
	client, err := NewClient(ClientConfig{BaseURL: srv.URL, Token: srv.Token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return client
}
