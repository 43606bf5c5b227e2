package verify

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"

	"github.com/appkeys/appkeys/internal/apikey"
)

// KeyService answers whether a well-formed key is valid. *Client is the
// production implementation.
type KeyService interface {
	Verify(ctx context.Context, key string) (Result, error)
}

// Observer receives the engine's and the feed's events, for metrics. Calls
// happen on the request path (some under the cache lock), so implementations
// must be quick and must not call back into the engine. Embed NopObserver to
// implement only some methods.
type Observer interface {
	CacheHit()
	CacheMiss()
	// CacheEvicted: an entry was pushed out by the size bound.
	CacheEvicted()
	// KeyServiceCall: one verify call ended; status is the HTTP status, or 0
	// when no answer arrived (connection error, timeout, TLS failure); err
	// is nil for a usable answer, a *BadAnswerError for a 200 that was not
	// one.
	KeyServiceCall(status int, err error, d time.Duration)
	// StaleServed: a cached answer past its freshness was used because the
	// key service failed.
	StaleServed()
	// RevocationApplied: a key.revoked, key.orphaned or app.deleted event
	// was applied to the caches.
	RevocationApplied()
	// EventApplied: the feed applied the event seq, lag after it happened.
	EventApplied(seq int64, lag time.Duration)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) CacheHit()                                {}
func (NopObserver) CacheMiss()                               {}
func (NopObserver) CacheEvicted()                            {}
func (NopObserver) KeyServiceCall(int, error, time.Duration) {}
func (NopObserver) StaleServed()                             {}
func (NopObserver) RevocationApplied()                       {}
func (NopObserver) EventApplied(int64, time.Duration)        {}

// Config tunes an Engine. Zero values take the defaults named below, which
// are the Caddyfile's.
type Config struct {
	// App is the app id keys must belong to; a valid key of another app is
	// refused as CodeWrongApp.
	App string
	// CacheSize bounds the cache of valid keys (default 100,000).
	CacheSize int
	// NegativeSize bounds the separate cache of invalid answers (default
	// CacheSize). It is a bound of its own so that a flood of unknown keys
	// can never evict a valid one; its entries take less than half the
	// memory of valid ones.
	NegativeSize int
	// CacheTTL is how long a valid answer is used without asking again
	// (default 5m). A key's own expiry always cuts it short.
	CacheTTL time.Duration
	// NegativeTTL is how long an invalid answer is used (default 10s).
	NegativeTTL time.Duration
	// StaleIfError is how long after CacheTTL a valid answer may still be
	// used while the key service fails (default 5m; negative disables).
	StaleIfError time.Duration
	// Timeout bounds each verify call (default 2s).
	Timeout time.Duration
	// FeedDownRevalidate: while the change feed has been down longer than
	// this, cached answers older than it are checked again before use
	// (default 30s).
	FeedDownRevalidate time.Duration
	// BreakerThreshold consecutive failures open the circuit breaker
	// (default 5).
	BreakerThreshold int
	// BreakerCooldown is how long the open breaker refuses calls before it
	// lets one probe through (default 1s).
	BreakerCooldown time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() error {
	if c.App == "" {
		return errors.New("app is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.CacheSize == 0 {
		c.CacheSize = 100_000
	}
	if c.NegativeSize == 0 {
		c.NegativeSize = c.CacheSize
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 5
	}
	def(&c.CacheTTL, 5*time.Minute)
	def(&c.NegativeTTL, 10*time.Second)
	def(&c.StaleIfError, 5*time.Minute)
	def(&c.Timeout, 2*time.Second)
	def(&c.FeedDownRevalidate, 30*time.Second)
	def(&c.BreakerCooldown, time.Second)
	if c.StaleIfError < 0 {
		c.StaleIfError = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.CacheSize < 0 || c.NegativeSize < 0:
		return errors.New("cache sizes must be positive")
	case c.CacheTTL < 0 || c.NegativeTTL < 0 || c.Timeout < 0 || c.FeedDownRevalidate < 0 || c.BreakerCooldown < 0:
		return errors.New("durations must be positive")
	case c.BreakerThreshold < 0:
		return errors.New("breaker threshold must be positive")
	}
	return nil
}

// fingerprint is the cache key: the first half of apikey.Fingerprint.
// 128 bits of SHA-256 keep accidental collisions out of reach (about 2^-88
// at a million keys) and a forged key would need a second preimage of a
// hash that never leaves the process; halving it saves a tenth of the
// cache's memory.
type fingerprint = [16]byte

func fingerprintOf(key string) fingerprint {
	sum := apikey.Fingerprint(key)
	return fingerprint(sum[:16])
}

// positive is a cached valid answer. It is kept small on purpose (the cache
// holds up to millions; see BenchmarkMemoryPerCachedKey): one string holds
// the key id, a NUL and the key name; times are whole seconds after the
// engine's base, rounded down so that an entry only ever looks older and a
// key's expiry earlier; the app id is the engine's own.
type positive struct {
	idName  string
	stored  uint32 // when the key service said so
	expires uint32 // the key's own expiry, always after stored
}

func (p *positive) keyID() string {
	if i := strings.IndexByte(p.idName, 0); i >= 0 {
		return p.idName[:i]
	}
	return p.idName
}

func (p *positive) keyName() string {
	if i := strings.IndexByte(p.idName, 0); i >= 0 {
		return p.idName[i+1:]
	}
	return ""
}

// negative is a cached invalid answer.
type negative struct {
	code   Code
	stored int64
}

type entryState uint8

const (
	stateFresh      entryState = iota
	stateRevalidate            // within CacheTTL, but the feed is down: ask again, use on error
	stateStale                 // past CacheTTL, within StaleIfError: ask again, use on error
	stateDead                  // past both
	stateKeyExpired            // past the key's own expiry: never usable again
)

// Engine decides about keys for one app. It is safe for concurrent use.
type Engine struct {
	cfg Config
	svc KeyService
	obs Observer

	mu  sync.Mutex
	pos *simplelru.LRU[fingerprint, positive]
	neg *simplelru.LRU[fingerprint, negative]
	// byKeyID finds a revoked key's entry by its id. It is keyed by a
	// seeded 64-bit hash of the id, which costs half of a string key; when
	// two cached ids ever share a hash, unindexed is set and Evict falls
	// back to a scan, so a collision can cost time but never a revocation.
	byKeyID   map[uint64]fingerprint
	seed      maphash.Seed
	unindexed bool
	base      int64  // unix nanos that positive's times count from
	gen       uint64 // bumped by every eviction or purge from the feed

	group    singleflight.Group
	brk      breaker
	feed     atomic.Pointer[Feed]
	life     sync.Mutex // orders inflight.Add before Close's Wait
	closed   bool
	inflight sync.WaitGroup
}

var errClosed = errors.New("engine closed")

// enter registers a call in flight unless the engine is closed.
func (e *Engine) enter() bool {
	e.life.Lock()
	defer e.life.Unlock()
	if e.closed {
		return false
	}
	e.inflight.Add(1)
	return true
}

// NewEngine returns an engine asking svc. obs may be nil.
func NewEngine(cfg Config, svc KeyService, obs Observer) (*Engine, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if svc == nil {
		return nil, errors.New("no key service")
	}
	if obs == nil {
		obs = NopObserver{}
	}
	e := &Engine{cfg: cfg, svc: svc, obs: obs, byKeyID: make(map[uint64]fingerprint), seed: maphash.MakeSeed()}
	e.base = cfg.Now().UnixNano()
	e.brk = breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown}
	var err error
	// The eviction callback runs under e.mu (simplelru is not locked on its
	// own), which keeps byKeyID exactly in step with the cache.
	e.pos, err = simplelru.NewLRU(cfg.CacheSize, func(fp fingerprint, p positive) {
		if h := e.idHash(p.keyID()); e.byKeyID[h] == fp {
			delete(e.byKeyID, h)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("valid-key cache: %w", err)
	}
	e.neg, err = simplelru.NewLRU[fingerprint, negative](cfg.NegativeSize, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid-key cache: %w", err)
	}
	return e, nil
}

// App returns the app this engine admits keys to.
func (e *Engine) App() string { return e.cfg.App }

// Follow makes the engine apply f's revocations and use f's health for the
// FeedDownRevalidate rule. The returned function undoes it.
func (e *Engine) Follow(f *Feed) (stop func()) {
	e.feed.Store(f)
	detach := f.Attach(e)
	return func() {
		detach()
		e.feed.CompareAndSwap(f, nil)
	}
}

func (e *Engine) idHash(keyID string) uint64 { return maphash.String(e.seed, keyID) }

// at converts a positive's time to unix nanos.
func (e *Engine) at(sec uint32) int64 { return e.base + int64(sec)*int64(time.Second) }

// sec converts unix nanos to seconds after base, rounded down and clamped.
func (e *Engine) sec(ns int64) uint32 {
	d := (ns - e.base) / int64(time.Second)
	return uint32(min(max(d, 0), math.MaxUint32))
}

// secOf is sec of a time from an answer, which may lie beyond what unix
// nanos can hold.
func (e *Engine) secOf(t time.Time) uint32 {
	if last := time.Unix(0, e.at(math.MaxUint32)); t.After(last) {
		t = last
	}
	return e.sec(t.UnixNano())
}

func (e *Engine) state(p *positive, now int64) entryState {
	if now >= e.at(p.expires) {
		return stateKeyExpired
	}
	age := now - e.at(p.stored)
	switch {
	case age < int64(e.cfg.CacheTTL):
		if age > int64(e.cfg.FeedDownRevalidate) {
			if f := e.feed.Load(); f != nil && f.downFor(now) > e.cfg.FeedDownRevalidate {
				return stateRevalidate
			}
		}
		return stateFresh
	case age < int64(e.cfg.CacheTTL+e.cfg.StaleIfError):
		return stateStale
	}
	return stateDead
}

func (e *Engine) validDecision(p *positive, src Source) Decision {
	d := Decision{Source: src}
	d.Valid, d.Code = true, CodeValid
	d.KeyID, d.KeyName, d.AppID = p.keyID(), p.keyName(), e.cfg.App
	d.ExpiresAt = time.Unix(0, e.at(p.expires))
	return d
}

// Check decides about key. A verdict (valid or not) comes with a nil error;
// an error means no verdict could be reached: it matches ErrUnavailable
// (the key service could not answer), ErrThrottled (it refused this key
// with 429), or is the caller's context error. A cache hit takes no
// allocation.
func (e *Engine) Check(ctx context.Context, key string) (Decision, error) {
	if apikey.Parse(key) != nil {
		return Decision{Result: Result{Code: CodeMalformed}, Source: SourceLocal}, nil
	}
	fp := fingerprintOf(key)
	now := e.cfg.Now().UnixNano()
	e.mu.Lock()
	if p, ok := e.pos.Get(fp); ok {
		switch e.state(&p, now) {
		case stateFresh:
			e.mu.Unlock()
			e.obs.CacheHit()
			return e.validDecision(&p, SourceCache), nil
		case stateKeyExpired:
			// The key's own expiry is final: answer without a call.
			e.pos.Remove(fp)
			if e.neg.Add(fp, negative{code: CodeExpired, stored: now}) {
				e.obs.CacheEvicted()
			}
			e.mu.Unlock()
			e.obs.CacheHit()
			d := e.validDecision(&p, SourceLocal)
			d.Valid, d.Code = false, CodeExpired
			return d, nil
		case stateDead:
			e.pos.Remove(fp)
		}
	} else if n, ok := e.neg.Get(fp); ok && now < n.stored+int64(e.cfg.NegativeTTL) {
		e.mu.Unlock()
		e.obs.CacheHit()
		return Decision{Result: Result{Code: n.code}, Source: SourceCache}, nil
	}
	e.mu.Unlock()
	e.obs.CacheMiss()
	return e.fetch(ctx, key, fp)
}

// Cached returns a fresh cached verdict that key is valid, without calling
// the key service or falling back to stale answers. A throttled client may
// still use a key the sidecar already knows to be good.
func (e *Engine) Cached(key string) (Decision, bool) {
	if apikey.Parse(key) != nil {
		return Decision{}, false
	}
	fp := fingerprintOf(key)
	now := e.cfg.Now().UnixNano()
	e.mu.Lock()
	p, ok := e.pos.Get(fp)
	if !ok || e.state(&p, now) != stateFresh {
		e.mu.Unlock()
		return Decision{}, false
	}
	e.mu.Unlock()
	e.obs.CacheHit()
	return e.validDecision(&p, SourceCache), true
}

// fetch asks the key service, sharing one call among concurrent callers for
// the same key, and falls back to a usable stale answer when it fails.
func (e *Engine) fetch(ctx context.Context, key string, fp fingerprint) (Decision, error) {
	if open, wait, last := e.brk.open(e.cfg.Now().UnixNano()); open {
		return e.fallback(fp, &UnavailableError{RetryAfter: wait, Err: breakerOpen(last)})
	}
	ch := e.group.DoChan(string(fp[:]), func() (any, error) {
		if !e.enter() {
			return nil, &UnavailableError{RetryAfter: e.cfg.BreakerCooldown, Err: errClosed}
		}
		defer e.inflight.Done()
		return e.call(ctx, key, fp)
	})
	select {
	case r := <-ch:
		if errors.Is(r.Err, ErrThrottled) {
			return Decision{}, r.Err // a refusal of this key: nothing stale stands in
		}
		if r.Err != nil {
			return e.fallback(fp, r.Err)
		}
		return r.Val.(Decision), nil
	case <-ctx.Done():
		// The shared call goes on for the others (and fills the cache).
		return Decision{}, ctx.Err()
	}
}

// call is the one shared verify call for a key. It runs under its own
// timeout, detached from the first caller's cancellation, so that caller
// going away does not fail everyone waiting on the same key.
func (e *Engine) call(ctx context.Context, key string, fp fingerprint) (any, error) {
	now := e.cfg.Now().UnixNano()
	// A caller that missed the cache just before an earlier call for this
	// key stored its answer starts a new flight; the answer is here now.
	e.mu.Lock()
	if p, ok := e.pos.Peek(fp); ok && e.state(&p, now) == stateFresh {
		e.mu.Unlock()
		return e.validDecision(&p, SourceCache), nil
	}
	if n, ok := e.neg.Peek(fp); ok && now < n.stored+int64(e.cfg.NegativeTTL) {
		e.mu.Unlock()
		return Decision{Result: Result{Code: n.code}, Source: SourceCache}, nil
	}
	gen := e.gen
	e.mu.Unlock()

	if ok, wait, last := e.brk.allow(now); !ok {
		return nil, &UnavailableError{RetryAfter: wait, Err: breakerOpen(last)}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, err := e.svc.Verify(cctx, key)
	e.obs.KeyServiceCall(statusOf(err), err, time.Since(start))
	if te := throttled(err); te != nil {
		// The key service is up and refuses this key, one failure too
		// many for the app: no outage, so the breaker does not count it
		// (else a flood of bad keys would lock good ones out), and no
		// answer to cache.
		e.brk.success()
		return nil, te
	}
	if err != nil {
		e.brk.failure(e.cfg.Now().UnixNano(), err)
		return nil, &UnavailableError{RetryAfter: e.cfg.BreakerCooldown, Err: err}
	}
	e.brk.success()
	now = e.cfg.Now().UnixNano()
	if code := e.refusal(&res, now); code != 0 {
		// The sidecar's own verdict, not the key service's: nothing is
		// cached, so the next request asks again, and an older valid entry
		// goes, so no outage serves it stale.
		e.forget(fp)
		res.Valid, res.Code = false, code
		return Decision{Result: res, Source: SourceService}, nil
	}
	e.store(fp, &res, now, gen)
	return Decision{Result: res, Source: SourceService}, nil
}

// forget drops whatever valid answer is cached for fp.
func (e *Engine) forget(fp fingerprint) {
	e.mu.Lock()
	e.pos.Remove(fp)
	e.mu.Unlock()
}

func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	var ba *BadAnswerError
	if errors.As(err, &ba) {
		return http.StatusOK
	}
	return 0
}

func (e *Engine) store(fp fingerprint, res *Result, now int64, gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !res.Valid {
		e.pos.Remove(fp)
		if e.neg.Add(fp, negative{code: res.Code, stored: now}) {
			e.obs.CacheEvicted()
		}
		return
	}
	e.neg.Remove(fp)
	if e.gen != gen {
		// A revocation or purge landed while the call was in flight; this
		// answer may predate it, so it answers this request but is not kept.
		e.pos.Remove(fp)
		return
	}
	if strings.IndexByte(res.KeyID, 0) >= 0 {
		return // cannot be stored unambiguously; never happens with real ids
	}
	// refusal let through only answers that expire after now.
	p := positive{idName: res.KeyID + "\x00" + res.KeyName, stored: e.sec(now), expires: e.secOf(res.ExpiresAt)}
	if p.expires <= p.stored {
		// Expires within the second: answer this request, keep nothing.
		e.pos.Remove(fp)
		return
	}
	if e.pos.Add(fp, p) {
		e.obs.CacheEvicted()
	}
	h := e.idHash(res.KeyID)
	if old, ok := e.byKeyID[h]; ok && old != fp {
		if q, ok := e.pos.Peek(old); ok && q.keyID() != res.KeyID {
			e.unindexed = true
		}
	}
	e.byKeyID[h] = fp
}

// fallback answers when the key service could not: a valid answer still
// within StaleIfError (and the key's own expiry), or a permanent invalid
// answer, is served; anything else is cause.
func (e *Engine) fallback(fp fingerprint, cause error) (Decision, error) {
	now := e.cfg.Now().UnixNano()
	e.mu.Lock()
	if p, ok := e.pos.Peek(fp); ok {
		switch e.state(&p, now) {
		case stateFresh, stateRevalidate, stateStale:
			e.mu.Unlock()
			e.obs.StaleServed()
			return e.validDecision(&p, SourceStale), nil
		}
	}
	if n, ok := e.neg.Peek(fp); ok && n.code.permanent() {
		e.mu.Unlock()
		e.obs.StaleServed()
		return Decision{Result: Result{Code: n.code}, Source: SourceStale}, nil
	}
	e.mu.Unlock()
	return Decision{}, cause
}

// Evict drops the cached answer for keyID and remembers code (revoked or
// orphaned) for it instead. It reports whether the key was cached.
func (e *Engine) Evict(keyID string, code Code) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	fp, ok := e.byKeyID[e.idHash(keyID)]
	if p, cached := e.pos.Peek(fp); !ok || !cached || p.keyID() != keyID {
		if !e.unindexed {
			return false
		}
		if fp, ok = e.scan(keyID); !ok {
			return false
		}
	}
	e.pos.Remove(fp)
	e.neg.Add(fp, negative{code: code, stored: e.cfg.Now().UnixNano()})
	return true
}

// scan finds keyID's entry the slow way, after a hash collision in byKeyID.
func (e *Engine) scan(keyID string) (fingerprint, bool) {
	for _, fp := range e.pos.Keys() {
		if p, _ := e.pos.Peek(fp); p.keyID() == keyID {
			return fp, true
		}
	}
	return fingerprint{}, false
}

// Purge drops every cached answer.
func (e *Engine) Purge() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	e.pos.Purge()
	e.neg.Purge()
	clear(e.byKeyID)
	e.unindexed = false
}

// Stats is a snapshot of the caches' sizes.
type Stats struct {
	ValidEntries   int
	InvalidEntries int
}

// Stats returns the current cache sizes.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{ValidEntries: e.pos.Len(), InvalidEntries: e.neg.Len()}
}

// Close refuses new calls and waits for the calls in flight, which the
// Timeout bounds, so no goroutine of the engine outlives it.
func (e *Engine) Close() {
	e.life.Lock()
	e.closed = true
	e.life.Unlock()
	e.inflight.Wait()
}
