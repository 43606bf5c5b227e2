package verify

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ThrottleConfig tunes a Throttle.
type ThrottleConfig struct {
	// Limit is how many failed attempts an address may make at once (the
	// bucket's size); it gets them back at Limit per Window.
	Limit int
	// Window is the time over which Limit attempts are granted again.
	Window time.Duration
	// Addresses bounds how many client addresses are tracked (default
	// 65,536); past it the address least recently checked is forgotten.
	Addresses int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Throttle counts failed key attempts per client address in a token
// bucket, so that a client guessing keys is slowed to Limit per Window
// while clients with good keys, which never fail, are not touched. IPv6
// addresses count per /64, the block one host usually gets. It starts no
// goroutine and its memory is bounded by Addresses. It is safe for
// concurrent use.
//
// An attempt is taken before the key is checked (Reserve) and given back
// when it turns out not to be the client's failure (Refund), so that
// concurrent requests cannot all pass a check made before any of them
// failed, and a request whose client hangs up before the verdict is
// charged like any other.
type Throttle struct {
	cfg      ThrottleConfig
	perToken float64 // nanoseconds to earn one attempt back

	mu      sync.Mutex
	buckets *simplelru.LRU[netip.Addr, *bucket]
}

type bucket struct {
	tokens float64
	at     int64 // unix nanos of the last refill
}

// NewThrottle returns an empty throttle.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	if cfg.Limit <= 0 || cfg.Window <= 0 {
		return nil, errors.New("throttle: limit and window must be positive")
	}
	if cfg.Addresses <= 0 {
		cfg.Addresses = 1 << 16
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lru, err := simplelru.NewLRU[netip.Addr, *bucket](cfg.Addresses, nil)
	if err != nil {
		return nil, err
	}
	return &Throttle{cfg: cfg, perToken: float64(cfg.Window) / float64(cfg.Limit), buckets: lru}, nil
}

// clientKey groups addresses that one client controls.
func clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// refill brings b up to date at now.
func (t *Throttle) refill(b *bucket, now int64) {
	if now > b.at {
		b.tokens = min(float64(t.cfg.Limit), b.tokens+float64(now-b.at)/t.perToken)
		b.at = now
	}
}

// Reserve takes one attempt from addr's bucket, before its key is
// checked. When none is left it takes nothing, reports false and how long
// until one is earned back.
func (t *Throttle) Reserve(addr netip.Addr) (bool, time.Duration) {
	k := clientKey(addr)
	now := t.cfg.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.buckets.Get(k)
	if !ok {
		b = &bucket{tokens: float64(t.cfg.Limit), at: now}
		t.buckets.Add(k, b)
	}
	t.refill(b, now)
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * t.perToken)
	}
	b.tokens--
	return true, 0
}

// Refund gives back an attempt Reserve took, for a check that ended in no
// failure of the client's. An address whose bucket is full again is
// forgotten, so that clients with good keys take no room from guessers'
// counts.
func (t *Throttle) Refund(addr netip.Addr) {
	k := clientKey(addr)
	now := t.cfg.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.buckets.Peek(k)
	if !ok {
		return // forgotten meanwhile: it starts full anyway
	}
	t.refill(b, now)
	if b.tokens = min(b.tokens+1, float64(t.cfg.Limit)); b.tokens >= float64(t.cfg.Limit) {
		t.buckets.Remove(k)
	}
}

// Len is the number of addresses tracked.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buckets.Len()
}
