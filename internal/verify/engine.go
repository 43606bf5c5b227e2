package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/appkeys/appkeys/internal/apikey"
)

// KeyService answers whether a well-formed key is valid. *Client is the
// production implementation.
type KeyService interface {
	Verify(ctx context.Context, key string) (Result, error)
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
	stored  uint32  // when the key service said so
	expires uint32  // the key's own expiry, always after stored
	lim     *Limits // nil when the key has no limits
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
	stateAbsent                // no valid answer cached
)

// Engine decides about keys for one app. It is safe for concurrent use.
type Engine struct {
	cfg Config
	svc KeyService
	obs Observer

	mu   sync.Mutex
	pos  *validCache
	neg  *simplelru.LRU[fingerprint, negative]
	base int64  // unix nanos that positive's times count from
	gen  uint64 // bumped by every eviction or purge from the feed

	// Shared calls, one per key (see flight), and the slots they take.
	fmu     sync.Mutex
	flights map[fingerprint]*flight
	waiting int           // flights queued for a slot, under fmu
	slots   chan struct{} // one token per call in flight; nil: no cap

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
	if cfg.CacheSize >= math.MaxInt32/2 {
		return nil, fmt.Errorf("cache size must be below %d", math.MaxInt32/2)
	}
	e := &Engine{cfg: cfg, svc: svc, obs: obs, pos: newValidCache(cfg.CacheSize), flights: map[fingerprint]*flight{}}
	if cfg.MaxVerifyCalls > 0 {
		e.slots = make(chan struct{}, cfg.MaxVerifyCalls)
	}
	// A base on a whole second keeps an expiry on a whole second (where a
	// roll's overlap ends) exact; any other is rounded down, a second at
	// most, which only ever ends a key early.
	e.base = cfg.Now().Truncate(time.Second).UnixNano()
	e.brk = breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown}
	var err error
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
	d.Limits = p.lim
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
	c := e.lookup(fp, now, true)
	switch {
	case c.state == stateFresh:
		e.mu.Unlock()
		e.obs.CacheHit()
		return e.validDecision(&c.pos, SourceCache), nil
	case c.state == stateKeyExpired:
		// The key's own expiry is final: answer without a call.
		e.pos.remove(fp)
		if e.neg.Add(fp, negative{code: CodeExpired, stored: now}) {
			e.obs.CacheEvicted()
		}
		e.mu.Unlock()
		e.obs.CacheHit()
		d := e.validDecision(&c.pos, SourceLocal)
		d.Valid, d.Code = false, CodeExpired
		return d, nil
	case c.state == stateDead:
		e.pos.remove(fp)
	case c.negFresh:
		e.mu.Unlock()
		e.obs.CacheHit()
		return Decision{Result: Result{Code: c.neg.code}, Source: SourceCache}, nil
	}
	e.mu.Unlock()
	e.obs.CacheMiss()
	return e.fetch(ctx, key, fp)
}

// Cached returns a fresh cached verdict that key is valid, without calling
// the key service or falling back to stale answers. A throttled client may
// still use a key the sidecar already knows to be good.
//
// It is the sidecar's hot path, so it skips Check's parse: only keys that
// parsed are ever stored, and finding the key's fingerprint is proof
// enough. The length check keeps what gets hashed short.
func (e *Engine) Cached(key string) (Decision, bool) {
	if len(key) != apikey.Len {
		return Decision{}, false
	}
	fp := fingerprintOf(key)
	now := e.cfg.Now().UnixNano()
	e.mu.Lock()
	c := e.lookup(fp, now, true)
	e.mu.Unlock()
	if c.state != stateFresh {
		return Decision{}, false
	}
	e.obs.CacheHit()
	return e.validDecision(&c.pos, SourceCache), true
}

// cached is what the caches hold for one key at one moment.
type cached struct {
	pos   positive
	state entryState // of pos; stateAbsent when no valid answer is held
	// neg is the invalid answer held when no valid one is (the two caches
	// never hold the same key); negFresh is whether it is within
	// NegativeTTL.
	neg      negative
	negHeld  bool
	negFresh bool
}

// lookup reads fp's entries under e.mu; touch marks them used for the
// LRU order. It is the one read of the caches.
func (e *Engine) lookup(fp fingerprint, now int64, touch bool) cached {
	if p, ok := e.pos.get(fp, touch); ok {
		return cached{pos: p, state: e.state(&p, now)}
	}
	readNeg := e.neg.Peek
	if touch {
		readNeg = e.neg.Get
	}
	n, ok := readNeg(fp)
	return cached{state: stateAbsent, neg: n, negHeld: ok, negFresh: ok && now < n.stored+int64(e.cfg.NegativeTTL)}
}

// Evict drops the cached answer for keyID and remembers code (revoked or
// orphaned) for it instead. It reports whether the key was cached.
func (e *Engine) Evict(keyID string, code Code) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	fp, ok := e.pos.removeID(keyID)
	if ok {
		e.neg.Add(fp, negative{code: code, stored: e.cfg.Now().UnixNano()})
	}
	return ok
}

// Shorten moves the expiry of keyID's cached answer to expires when that
// is sooner (a rolled key's overlap ends there); it never lengthens one. A
// zero expires drops the answer, so the next request asks again. Like
// Evict, it keeps an answer already in flight, which may predate the
// change, out of the cache. It reports whether the key was cached.
func (e *Engine) Shorten(keyID string, expires time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	if expires.IsZero() {
		_, ok := e.pos.removeID(keyID)
		return ok
	}
	return e.pos.shortenID(keyID, e.secOf(expires))
}

// Purge drops every cached answer.
func (e *Engine) Purge() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	e.pos.purge()
	e.neg.Purge()
}

// Stats is a snapshot of the caches' sizes and of the verify queue.
type Stats struct {
	ValidEntries   int
	InvalidEntries int
	// QueueWaiting is the number of verify calls (one per key, however
	// many requests wait for it) queued for a slot.
	QueueWaiting int
}

// Stats returns the current cache sizes and queue length.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	st := Stats{ValidEntries: e.pos.len(), InvalidEntries: e.neg.Len()}
	e.mu.Unlock()
	e.fmu.Lock()
	st.QueueWaiting = e.waiting
	e.fmu.Unlock()
	return st
}

// Close refuses new calls and waits for the calls in flight, which the
// Timeout bounds, so no goroutine of the engine outlives it.
func (e *Engine) Close() {
	e.life.Lock()
	e.closed = true
	e.life.Unlock()
	e.inflight.Wait()
}
