package verify

import (
	"fmt"
	"sync"
	"time"
)

// breakerOpen is the cause given for a call the open breaker refused: it
// names the failure that opened it (a refused connection, a certificate
// that did not verify), so logs say why, not only that calls stop.
func breakerOpen(last error) error {
	if last == nil {
		return errBreakerOpen
	}
	return fmt.Errorf("%w; last failure: %w", errBreakerOpen, last)
}

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
	last      error // the latest failure, named in the breaker's refusals
}

// allow reports whether a call may go out now, and if not, how long until
// one may and the failure that opened the breaker. A call let through
// while the breaker is half-open is its one probe.
func (b *breaker) allow(now int64) (bool, time.Duration, error) {
	refused, wait, last := b.check(now, true)
	return !refused, wait, last
}

// open reports whether the breaker refuses calls at now, without claiming
// the half-open probe.
func (b *breaker) open(now int64) (bool, time.Duration, error) {
	return b.check(now, false)
}

// check is allow and open in one: claim takes the half-open probe when it
// is free.
func (b *breaker) check(now int64, claim bool) (refused bool, wait time.Duration, last error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failures < b.threshold:
		return false, 0, nil
	case now < b.openUntil:
		return true, time.Duration(b.openUntil - now), b.last
	case b.probing:
		return true, b.cooldown, b.last
	case claim:
		b.probing = true
		return false, 0, nil
	}
	return false, b.cooldown, b.last
}

func (b *breaker) success() {
	b.mu.Lock()
	b.failures, b.probing, b.last = 0, false, nil
	b.mu.Unlock()
}

func (b *breaker) failure(now int64, err error) {
	b.mu.Lock()
	b.failures++
	b.last = err
	b.probing = false
	if b.failures >= b.threshold {
		b.openUntil = now + int64(b.cooldown)
	}
	b.mu.Unlock()
}
