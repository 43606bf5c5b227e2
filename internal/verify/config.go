package verify

import (
	"errors"
	"time"
)

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
	// Timeout bounds each verify call (default 2s), from when it gets its
	// slot (see MaxVerifyCalls).
	Timeout time.Duration
	// MaxVerifyCalls bounds the verify calls in flight at once (default
	// 64; negative: no bound). Past it, a miss queues for a slot for as
	// long as its request's context allows, so that a sidecar restarting
	// cold in front of many distinct keys does not open a call per key
	// at once.
	MaxVerifyCalls int
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
	// LimitShare divides each key's rate limit among this many sidecars
	// (default 1: each enforces the whole limit). With N replicas of an
	// app, each keeping its own bucket, a client may get N times a key's
	// limit; LimitShare N brings that back to the limit (each sidecar
	// allows Requests/N, at least one request per window).
	LimitShare int
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
	if c.MaxVerifyCalls == 0 {
		c.MaxVerifyCalls = 64
	}
	if c.LimitShare == 0 {
		c.LimitShare = 1
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
	case c.LimitShare < 0:
		return errors.New("limit share must be positive")
	case c.CacheSize < 0 || c.NegativeSize < 0:
		return errors.New("cache sizes must be positive")
	case c.CacheTTL < 0 || c.NegativeTTL < 0 || c.Timeout < 0 || c.FeedDownRevalidate < 0 || c.BreakerCooldown < 0:
		return errors.New("durations must be positive")
	case c.BreakerThreshold < 0:
		return errors.New("breaker threshold must be positive")
	}
	return nil
}
