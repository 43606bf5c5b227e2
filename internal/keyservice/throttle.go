package keyservice

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for the per-verifier budget of failed verifies.
const (
	DefaultVerifyFailureRate  = 50  // failed verifies per second, sustained
	DefaultVerifyFailureBurst = 500 // failed verifies allowed at once
)

// failureThrottle bounds how fast one app's sidecar may get failing answers
// (unknown, malformed or other apps' keys): a guessing client behind one
// sidecar is slowed without a cost to good keys, which consume no budget
// and are always answered.
type failureThrottle struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	apps  map[string]*rate.Limiter
	// max, when set, bounds the limiters kept: keyed by client address
	// (leak reports), the map would grow with every address an attacker
	// can send from. Past it the map starts again, which forgives every
	// address at once: by then per-address budgets no longer hold anyone.
	max int
}

func newFailureThrottle(perSecond float64, burst int) *failureThrottle {
	if perSecond <= 0 {
		perSecond = DefaultVerifyFailureRate
	}
	if burst <= 0 {
		burst = DefaultVerifyFailureBurst
	}
	return &failureThrottle{rate: rate.Limit(perSecond), burst: burst, apps: make(map[string]*rate.Limiter)}
}

func (f *failureThrottle) limiter(appID string) *rate.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.apps[appID]
	if !ok {
		if f.max > 0 && len(f.apps) >= f.max {
			clear(f.apps)
		}
		l = rate.NewLimiter(f.rate, f.burst)
		f.apps[appID] = l
	}
	return l
}

// allow spends one unit of appID's failure budget at now; when none is
// left it reports false and how long until one is.
func (f *failureThrottle) allow(appID string, now time.Time) (bool, time.Duration) {
	l := f.limiter(appID)
	if l.AllowN(now, 1) {
		return true, 0
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}
