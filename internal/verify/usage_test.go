package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// usageSink is a key service's usage endpoint that can be made to fail.
type usageSink struct {
	mu      sync.Mutex
	got     map[string]UsageCount
	reports int
	fail    error
}

func (s *usageSink) ReportUsage(_ context.Context, keys []UsageCount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if len(keys) > ReportBatch {
		return &StatusError{Status: 400}
	}
	s.reports++
	for _, k := range keys {
		p := s.got[k.KeyID]
		p.KeyID = k.KeyID
		p.Allowed += k.Allowed
		p.RateLimited += k.RateLimited
		p.Forbidden += k.Forbidden
		s.got[k.KeyID] = p
	}
	return nil
}

func (s *usageSink) setFail(err error) { s.mu.Lock(); s.fail = err; s.mu.Unlock() }

func (s *usageSink) total() (n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.got {
		n += c.total()
	}
	return n
}

type usageObs struct{ reported, overflow, dropped atomic.Int64 }

func (o *usageObs) UsageReported(_ int, n int64) { o.reported.Add(n) }
func (o *usageObs) UsageOverflow()               { o.overflow.Add(1) }
func (o *usageObs) UsageDropped(n int64)         { o.dropped.Add(n) }

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newTestUsage(t *testing.T, cfg UsageConfig) (*Usage, *usageSink, *usageObs, *fakeClock) {
	t.Helper()
	sink := &usageSink{got: map[string]UsageCount{}}
	obs := &usageObs{}
	clk := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	cfg.Now = clk.Now
	u, err := NewUsage(cfg, sink, obs)
	if err != nil {
		t.Fatal(err)
	}
	return u, sink, obs, clk
}

// Counts per key and outcome arrive summed, in reports of at most
// ReportBatch keys; a flood of distinct keys (a client cycling through
// many valid keys) stops at MaxKeys and is counted as overflow, never as
// memory.
func TestUsageCountsAndBoundsKeys(t *testing.T) {
	u, sink, obs, _ := newTestUsage(t, UsageConfig{MaxKeys: 2500})
	for i := range 3000 {
		u.Count(fmt.Sprintf("key_%d", i), OutcomeAllowed)
	}
	u.Count("key_1", OutcomeRateLimited)
	u.Count("key_1", OutcomeForbidden)
	u.Count("key_1", Outcome(200)) // not an outcome: ignored
	if err := u.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.got["key_1"]; got != (UsageCount{KeyID: "key_1", Allowed: 1, RateLimited: 1, Forbidden: 1}) {
		t.Fatalf("key_1 reported %+v", got)
	}
	if len(sink.got) != 2500 || sink.reports != 3 || obs.overflow.Load() != 500 || obs.reported.Load() != 2502 {
		t.Fatalf("%d keys in %d reports, overflow %d, reported %d", len(sink.got), sink.reports, obs.overflow.Load(), obs.reported.Load())
	}
	// The next batch starts empty: nothing is sent twice.
	if err := u.Flush(context.Background()); err != nil || sink.reports != 3 {
		t.Fatalf("an empty flush sent %d reports, %v", sink.reports, err)
	}
}

// While the key service is away, counts wait and are sent once, when it
// is back; away longer than DropAfter, they are dropped and counted so.
// A report refused as malformed is dropped at once.
func TestUsageKeyServiceAway(t *testing.T) {
	u, sink, obs, clk := newTestUsage(t, UsageConfig{DropAfter: time.Minute})
	sink.setFail(errors.New("connection refused"))
	u.Count("key_a", OutcomeAllowed)
	if err := u.Flush(context.Background()); err == nil {
		t.Fatal("a failed report was not reported as failed")
	}
	clk.Advance(30 * time.Second)
	u.Count("key_a", OutcomeAllowed)
	u.Flush(context.Background())
	sink.setFail(nil)
	if err := u.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.got["key_a"].Allowed; got != 2 || obs.dropped.Load() != 0 {
		t.Fatalf("after the key service came back: %d allowed, %d dropped", got, obs.dropped.Load())
	}

	sink.setFail(errors.New("connection refused"))
	u.Count("key_b", OutcomeAllowed)
	u.Count("key_b", OutcomeAllowed)
	u.Flush(context.Background())
	clk.Advance(61 * time.Second)
	u.Count("key_b", OutcomeAllowed)
	u.Flush(context.Background())
	sink.setFail(nil)
	u.Flush(context.Background())
	if got := sink.got["key_b"].Allowed; got != 0 || obs.dropped.Load() != 3 {
		t.Fatalf("after DropAfter: %d sent, %d dropped (want 0 and 3)", got, obs.dropped.Load())
	}

	sink.setFail(&StatusError{Status: 400})
	u.Count("key_c", OutcomeAllowed)
	u.Flush(context.Background())
	sink.setFail(nil)
	u.Flush(context.Background())
	if got := sink.got["key_c"].Allowed; got != 0 || obs.dropped.Load() != 4 {
		t.Fatalf("a refused report: %d sent later, %d dropped (want 0 and 4)", got, obs.dropped.Load())
	}
}

// Counting while reports go out loses nothing and counts nothing twice;
// Close sends what is left.
func TestUsageConcurrentCountingAndClose(t *testing.T) {
	u, sink, obs, _ := newTestUsage(t, UsageConfig{Interval: time.Millisecond})
	u.Start()
	var wg sync.WaitGroup
	const workers, each = 4, 5000
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				u.Count(fmt.Sprintf("key_%d", (w*each+i)%50), Outcome(i%3))
			}
		}()
	}
	wg.Wait()
	u.Close()
	if got := sink.total(); got != workers*each || obs.dropped.Load() != 0 {
		t.Fatalf("sent %d of %d requests, dropped %d", got, workers*each, obs.dropped.Load())
	}
	u.Close() // twice is harmless
}

// Close with the key service away waits at most Timeout, then drops and
// counts what it could not send.
func TestUsageCloseWithKeyServiceAway(t *testing.T) {
	u, sink, obs, _ := newTestUsage(t, UsageConfig{Timeout: 50 * time.Millisecond})
	sink.setFail(errors.New("connection refused"))
	u.Count("key_a", OutcomeAllowed)
	u.Close()
	if obs.dropped.Load() != 1 {
		t.Fatalf("dropped %d at close, want 1", obs.dropped.Load())
	}
}

// blockingSink is a key service that holds every report until released.
type blockingSink struct {
	entered chan struct{}
	release chan struct{}
}

func (s *blockingSink) ReportUsage(ctx context.Context, keys []UsageCount) error {
	s.entered <- struct{}{}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A slow key service never holds up the request path: while a report
// hangs, requests are still counted, into the next batch.
func TestUsageCountingNeverWaitsForTheKeyService(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	obs := &usageObs{}
	u, err := NewUsage(UsageConfig{Timeout: time.Hour}, sink, obs)
	if err != nil {
		t.Fatal(err)
	}
	u.Count("key_a", OutcomeAllowed)
	done := make(chan error)
	go func() { done <- u.Flush(context.Background()) }()
	<-sink.entered // the report hangs at the key service
	for range 10_000 {
		u.Count("key_a", OutcomeAllowed)
		u.Count("key_b", OutcomeForbidden)
	}
	close(sink.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() {
		for range sink.entered {
		}
	}()
	if err := u.Flush(context.Background()); err != nil || obs.reported.Load() != 20_001 {
		t.Fatalf("reported %d of 20,001 requests, %v", obs.reported.Load(), err)
	}
	close(sink.entered)
}

// BenchmarkUsageCount is what counting costs a request with a key already
// counted in the batch (every request but a key's first in 10 s), from
// all cores at once.
func BenchmarkUsageCount(b *testing.B) {
	u, err := NewUsage(UsageConfig{}, &usageSink{got: map[string]UsageCount{}}, &usageObs{})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("key_%020d", i)
		u.Count(ids[i], OutcomeAllowed)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			u.Count(ids[i%len(ids)], OutcomeAllowed)
			i++
		}
	})
}
