package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A sidecar restarting cold in front of many distinct keys must not open a
// verify call per key at once: no more than MaxVerifyCalls reach the key
// service together, the rest queue, and every key still gets its answer.
func TestVerifyCallsCapped(t *testing.T) {
	noGoroutineLeak(t)
	svc := newFakeService()
	obs := &countObserver{}
	const limit, n = 4, 60
	e := newTestEngine(t, Config{MaxVerifyCalls: limit, Timeout: time.Hour}, svc, obs)
	release := holdCalls(t, svc)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = svc.addKey(t, testApp, fmt.Sprintf("key_%d", i), time.Time{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, k := range keys {
		wg.Go(func() {
			d, err := e.Check(context.Background(), k)
			if err == nil && !d.Valid {
				err = fmt.Errorf("not valid: %+v", d)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	eventually(t, "the cap reached and the rest queued", func() bool {
		return svc.active.Load() == limit && e.Stats().QueueWaiting == n-limit
	})
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p := svc.peak.Load(); p > limit {
		t.Fatalf("%d verify calls at once; the cap is %d", p, limit)
	}
	if got := svc.total.Load(); got != n {
		t.Fatalf("%d calls for %d keys", got, n)
	}
	if q := obs.queued.Load(); q < n-limit {
		t.Fatalf("queued_total %d; want at least %d", q, n-limit)
	}
	if w := e.Stats().QueueWaiting; w != 0 {
		t.Fatalf("%d still waiting after every answer", w)
	}
}

// A request queued behind the cap leaves at its own deadline, at once, with
// an outage answer (503 and Retry-After for the handler), not its context's
// error. The shared call it alone waited on leaves the queue with it: it
// never takes a slot, never reaches the key service, and the queue gauge
// drops the moment the request returns. The previous attempt kept the
// detached shared call queued until its own timeout.
func TestQueuedPastDeadlineAnswers503(t *testing.T) {
	noGoroutineLeak(t)
	svc := newFakeService()
	e := newTestEngine(t, Config{MaxVerifyCalls: 1, Timeout: time.Hour}, svc, nil)
	release := holdCalls(t, svc)
	busy := svc.addKey(t, testApp, "key_busy", time.Time{})
	queued := svc.addKey(t, testApp, "key_queued", time.Time{})

	first := make(chan Decision, 1)
	go func() {
		d, _ := e.Check(context.Background(), busy)
		first <- d
	}()
	eventually(t, "the first call holds the one slot", func() bool { return svc.active.Load() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.Check(ctx, queued)
	var ue *UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) || ue.RetryAfter <= 0 {
		t.Fatalf("queued past its deadline: %v; want an UnavailableError with a RetryAfter", err)
	}
	if w := e.Stats().QueueWaiting; w != 0 {
		t.Fatalf("queue_waiting %d after the only request for the key gave up; want 0", w)
	}

	release()
	if d := <-first; !d.Valid {
		t.Fatalf("the call holding the slot: %+v", d)
	}
	// The freed slot went to nobody: the abandoned key was never asked.
	e.Close()
	if n := svc.callsFor(queued); n != 0 {
		t.Fatalf("the abandoned key reached the key service %d times", n)
	}
}

// A client that hangs up while queued leaves the same way, whichever of
// the requests for one key gives up first: the shared call stays queued
// while anyone still waits for it, and leaves with the last.
func TestQueuedSharedCallLeavesWithItsLastWaiter(t *testing.T) {
	noGoroutineLeak(t)
	svc := newFakeService()
	e := newTestEngine(t, Config{MaxVerifyCalls: 1, Timeout: time.Hour}, svc, nil)
	release := holdCalls(t, svc)
	busy := svc.addKey(t, testApp, "key_busy", time.Time{})
	shared := svc.addKey(t, testApp, "key_shared", time.Time{})
	go e.Check(context.Background(), busy)
	eventually(t, "the first call holds the one slot", func() bool { return svc.active.Load() == 1 })

	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { _, err := e.Check(ctxA, shared); errA <- err }()
	go func() { _, err := e.Check(ctxB, shared); errB <- err }()
	eventually(t, "one shared call queued for both", func() bool {
		return waitersOf(e, shared) == 2 && e.Stats().QueueWaiting == 1
	})
	cancelA()
	if err := <-errA; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("first to give up: %v; want unavailable", err)
	}
	if w := e.Stats().QueueWaiting; w != 1 {
		t.Fatalf("queue_waiting %d while a request still waits; want 1", w)
	}
	cancelB()
	if err := <-errB; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("last to give up: %v; want unavailable", err)
	}
	if w := e.Stats().QueueWaiting; w != 0 {
		t.Fatalf("queue_waiting %d after every request gave up; want 0", w)
	}
	release()
	e.Close()
	if n := svc.callsFor(shared); n != 0 {
		t.Fatalf("the abandoned key reached the key service %d times", n)
	}
}

// While one request for a key still waits, the others giving up does not
// take the answer from it, and the key is asked once.
func TestQueuedSharedCallServesTheOneWhoStayed(t *testing.T) {
	noGoroutineLeak(t)
	svc := newFakeService()
	e := newTestEngine(t, Config{MaxVerifyCalls: 1, Timeout: time.Hour}, svc, nil)
	release := holdCalls(t, svc)
	busy := svc.addKey(t, testApp, "key_busy", time.Time{})
	shared := svc.addKey(t, testApp, "key_shared", time.Time{})
	go e.Check(context.Background(), busy)
	eventually(t, "the first call holds the one slot", func() bool { return svc.active.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	stayed := make(chan Decision, 1)
	go func() { _, err := e.Check(ctx, shared); gaveUp <- err }()
	go func() { d, _ := e.Check(context.Background(), shared); stayed <- d }()
	eventually(t, "two requests on the queued call", func() bool {
		return waitersOf(e, shared) == 2
	})
	cancel()
	<-gaveUp
	release()
	if d := <-stayed; !d.Valid {
		t.Fatalf("the request that stayed: %+v", d)
	}
	if n := svc.callsFor(shared); n != 1 {
		t.Fatalf("%d calls for the shared key; want 1", n)
	}
}

// A request whose answer is already being fetched when it gives up is no
// queued request: it keeps its own cancellation as before, and the call
// goes on to fill the cache.
func TestStartedCallIsNotAbandoned(t *testing.T) {
	svc := newFakeService()
	e := newTestEngine(t, Config{MaxVerifyCalls: 1}, svc, nil)
	release := holdCalls(t, svc)
	key := svc.addKey(t, testApp, "key_started", time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := e.Check(ctx, key); done <- err }()
	eventually(t, "the call started", func() bool { return svc.active.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("%v; want the request's own cancellation", err)
	}
	release()
	eventually(t, "the call filled the cache", func() bool { return e.Stats().ValidEntries == 1 })
}

// A negative MaxVerifyCalls removes the cap: every miss calls at once.
func TestVerifyCallsUncapped(t *testing.T) {
	svc := newFakeService()
	e := newTestEngine(t, Config{MaxVerifyCalls: -1, Timeout: time.Hour}, svc, nil)
	release := holdCalls(t, svc)
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		k := svc.addKey(t, testApp, fmt.Sprintf("key_%d", i), time.Time{})
		wg.Go(func() { e.Check(context.Background(), k) })
	}
	eventually(t, "every call in flight at once", func() bool { return svc.active.Load() == n })
	release()
	wg.Wait()
}

// The default cap is 64.
func TestVerifyCallsDefaultCap(t *testing.T) {
	svc := newFakeService()
	e := newTestEngine(t, Config{Timeout: time.Hour}, svc, nil)
	release := holdCalls(t, svc)
	const n = 80
	var wg sync.WaitGroup
	for i := range n {
		k := svc.addKey(t, testApp, fmt.Sprintf("key_%d", i), time.Time{})
		wg.Go(func() { e.Check(context.Background(), k) })
	}
	eventually(t, "64 in flight, 16 queued", func() bool { return svc.active.Load() == 64 && e.Stats().QueueWaiting == n-64 })
	release()
	wg.Wait()
	if p := svc.peak.Load(); p != 64 {
		t.Fatalf("peak %d; want 64", p)
	}
}

// holdCalls makes svc's calls wait until the returned function is called,
// which the test's cleanup does too (before the engine's Close waits for
// them), so a failing test ends instead of hanging.
func holdCalls(t *testing.T, svc *fakeService) (release func()) {
	svc.hold = make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(svc.hold) }) }
	t.Cleanup(release)
	return release
}

// waitersOf is the number of requests waiting on key's shared call.
func waitersOf(e *Engine, key string) int {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	if f := e.flights[fingerprintOf(key)]; f != nil {
		return f.waiters
	}
	return 0
}
