package verify

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// EventSource reads the key service's change feed. *Client implements it.
type EventSource interface {
	Events(ctx context.Context, cursor int64, fromHead bool, wait time.Duration) (EventPage, error)
}

// Sink is what the feed applies events to. *Engine implements it.
type Sink interface {
	// Evict drops a revoked or orphaned key's cached answer.
	Evict(keyID string, code Code) bool
	// Shorten moves a key's cached expiry back to expires, never forward;
	// a zero expires drops the answer.
	Shorten(keyID string, expires time.Time) bool
	// Purge drops every cached answer.
	Purge()
}

// FeedConfig tunes a Feed. Zero values take the defaults named below.
type FeedConfig struct {
	// App is the app whose feed this is; events naming another app are
	// ignored.
	App string
	// Wait is the long-poll duration asked of the key service (default 30s).
	Wait time.Duration
	// BackoffMin and BackoffMax bound the reconnect delay after a failed
	// poll (defaults 100ms and 10s); each delay is jittered.
	BackoffMin, BackoffMax time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Feed follows one app's change feed and applies it to the attached caches.
// One Feed per app and key service is enough for a whole process.
type Feed struct {
	cfg FeedConfig
	src EventSource
	obs Observer

	mu    sync.Mutex
	sinks map[*sinkRef]struct{}

	downSince atomic.Int64 // unix nanos since the feed is not known good; 0 while it is
	lastSeq   atomic.Int64
	lastAt    atomic.Int64 // unix nanos of the newest applied event's time
	lastLag   atomic.Int64

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

type sinkRef struct{ Sink }

// NewFeed returns a feed reading src; Start runs it. obs may be nil.
func NewFeed(cfg FeedConfig, src EventSource, obs Observer) (*Feed, error) {
	if cfg.App == "" {
		return nil, errors.New("app is required")
	}
	if src == nil {
		return nil, errors.New("no event source")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(10*time.Second, cfg.BackoffMin)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if obs == nil {
		obs = NopObserver{}
	}
	f := &Feed{cfg: cfg, src: src, obs: obs, sinks: make(map[*sinkRef]struct{}), done: make(chan struct{})}
	// Until the first answer, nothing says the feed works.
	f.downSince.Store(cfg.Now().UnixNano())
	return f, nil
}

// Attach makes the feed apply its events to s until detach is called.
func (f *Feed) Attach(s Sink) (detach func()) {
	ref := &sinkRef{s}
	f.mu.Lock()
	f.sinks[ref] = struct{}{}
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		delete(f.sinks, ref)
		f.mu.Unlock()
	}
}

// Start runs the subscriber in its own goroutine; later calls do nothing.
func (f *Feed) Start() {
	f.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel = cancel
		go f.run(ctx)
	})
}

// Close stops the subscriber and waits for its goroutine to end.
func (f *Feed) Close() {
	f.startOnce.Do(func() { close(f.done) }) // never started: nothing to wait for
	if f.cancel != nil {
		f.cancel()
	}
	<-f.done
}

// FeedStats is a snapshot of the subscriber's progress.
type FeedStats struct {
	// Up is whether the last poll succeeded.
	Up bool
	// DownSince is when the feed stopped being known good (zero while Up).
	DownSince time.Time
	// LastSeq is the newest applied event's sequence number (0 before any).
	LastSeq int64
	// LastEventAt is the newest applied event's time.
	LastEventAt time.Time
	// Lag is how long after it happened the newest event was applied.
	Lag time.Duration
}

// Stats returns the subscriber's progress.
func (f *Feed) Stats() FeedStats {
	s := FeedStats{LastSeq: f.lastSeq.Load(), Lag: time.Duration(f.lastLag.Load())}
	if d := f.downSince.Load(); d != 0 {
		s.DownSince = time.Unix(0, d)
	} else {
		s.Up = true
	}
	if at := f.lastAt.Load(); at != 0 {
		s.LastEventAt = time.Unix(0, at)
	}
	return s
}

// downFor is how long the feed has not been known good at now.
func (f *Feed) downFor(now int64) time.Duration {
	d := f.downSince.Load()
	if d == 0 {
		return 0
	}
	return time.Duration(now - d)
}

func (f *Feed) markUp() { f.downSince.Store(0) }

func (f *Feed) markDown() {
	f.downSince.CompareAndSwap(0, f.cfg.Now().UnixNano())
}

func (f *Feed) run(ctx context.Context) {
	defer close(f.done)
	var (
		cursor   int64
		haveHead bool
		failures int
		// expiries counts 410s since a page was last read from a cursor.
		expiries int
	)
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, f.cfg.Wait+10*time.Second)
		page, err := f.src.Events(pctx, cursor, !haveHead, f.cfg.Wait)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrCursorExpired):
			// Events were lost (pruned, or the key service's store went
			// back behind the cursor): nothing cached can be trusted. The
			// first time, start again from the head at once. A 410 again
			// before any page was read from there means something is
			// wrong on the other side: back off as after a failure, so
			// the subscriber never spins against the key service.
			haveHead, cursor = false, 0
			f.markDown()
			expiries++
			if expiries > 1 && !sleep(ctx, f.backoff(expiries-1)) {
				return
			}
			continue
		case err != nil:
			f.markDown()
			failures++
			if !sleep(ctx, f.backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		if !haveHead {
			// Starting from the head skips whatever happened before it,
			// so what was cached before cannot be trusted either.
			haveHead = true
			cursor = page.Next
			f.purgeAll()
			f.markUp()
			continue
		}
		f.markUp()
		expiries = 0
		for _, ev := range page.Events {
			if ev.Seq <= cursor {
				continue // already applied (a retried page)
			}
			f.apply(ev)
			cursor = ev.Seq
		}
		cursor = max(cursor, page.Next)
	}
}

func (f *Feed) apply(ev Event) {
	if ev.AppID == "" || ev.AppID == f.cfg.App {
		switch ev.Type {
		case EventKeyRevoked:
			f.evictAll(ev.KeyID, CodeRevoked)
			f.obs.RevocationApplied()
		case EventKeyOrphaned:
			f.evictAll(ev.KeyID, CodeOrphaned)
			f.obs.RevocationApplied()
		case EventKeyExpiryChanged:
			// A rolled key: its overlap ends at ExpiresAt. An event
			// without one cannot be applied as meant; dropping the entry
			// is safe, the next request asks again.
			var exp time.Time
			if ev.ExpiresAt != nil {
				exp = *ev.ExpiresAt
			}
			f.each(func(s Sink) { s.Shorten(ev.KeyID, exp) })
		case EventKeyUpdated:
			// The key's limits changed: drop the answer (a zero expiry),
			// so the next request asks again and gets the new limits.
			f.each(func(s Sink) { s.Shorten(ev.KeyID, time.Time{}) })
		case EventAppDeleted:
			f.purgeAll()
			f.obs.RevocationApplied()
		}
	}
	lag := time.Duration(0)
	if !ev.At.IsZero() {
		lag = max(0, f.cfg.Now().Sub(ev.At))
		f.lastAt.Store(ev.At.UnixNano())
	}
	f.lastLag.Store(int64(lag))
	f.lastSeq.Store(ev.Seq)
	f.obs.EventApplied(ev.Seq, lag)
}

func (f *Feed) evictAll(keyID string, code Code) { f.each(func(s Sink) { s.Evict(keyID, code) }) }

func (f *Feed) purgeAll() { f.each(Sink.Purge) }

// each applies fn to every attached sink.
func (f *Feed) each(fn func(Sink)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.sinks {
		fn(s.Sink)
	}
}

// backoff is the delay before the n-th consecutive retry: exponential,
// capped, with jitter so that many sidecars do not reconnect in step.
func (f *Feed) backoff(n int) time.Duration {
	d := f.cfg.BackoffMin
	for i := 1; i < n && d < f.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, f.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
