// Package testclock is the settable clock that tests inject wherever the
// code takes a clock (Now func() time.Time), so that expiry, TTLs and
// windows are tested without sleeping. It imports nothing of appkeys, so
// any package's tests can use it without an import cycle.
package testclock

import (
	"sync"
	"time"
)

// Clock reads a fixed time until a test moves it. It is safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock that reads t until moved.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
