package verify

import (
	"sync"
	"time"
)

// breaker stops calls to a key service that keeps failing, so that requests
// for unknown keys get a fast "unavailable" instead of each waiting out the
// timeout. After cooldown it lets one probe through (half-open); the probe's
// success closes it, its failure reopens it.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	failures  int
	openUntil int64 // unix nanos; meaningful while failures >= threshold
	probing   bool
}

// allow reports whether a call may go out now, and if not, how long until
// one may.
func (b *breaker) allow(now int64) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true, 0
	}
	if now < b.openUntil {
		return false, time.Duration(b.openUntil - now)
	}
	if b.probing {
		return false, b.cooldown
	}
	b.probing = true
	return true, 0
}

// open reports whether the breaker refuses calls at now, without claiming
// the half-open probe.
func (b *breaker) open(now int64) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return false, 0
	}
	if now < b.openUntil {
		return true, time.Duration(b.openUntil - now)
	}
	return b.probing, b.cooldown
}

func (b *breaker) success() {
	b.mu.Lock()
	b.failures, b.probing = 0, false
	b.mu.Unlock()
}

func (b *breaker) failure(now int64) {
	b.mu.Lock()
	b.failures++
	b.probing = false
	if b.failures >= b.threshold {
		b.openUntil = now + int64(b.cooldown)
	}
	b.mu.Unlock()
}
