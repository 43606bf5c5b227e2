package verify

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a key's rate limit as the key service gives it: Requests per
// Per (a second, a minute or an hour), with a burst of Requests. The zero
// value is no limit.
type Rate struct {
	Requests int
	Per      time.Duration
}

// Limits enforces one key's limits in this sidecar: its networks and its
// token bucket (golang.org/x/time/rate). One *Limits is shared by every
// request presenting the key, and kept across the cache's refreshes of the
// key while its limits stay the same, so a refresh never refills the
// bucket. A nil *Limits limits nothing. It is safe for concurrent use.
//
// The bucket is this sidecar's alone: with N replicas of an app, a client
// spreading its requests over them gets up to N times the limit, unless
// the engine's LimitShare divides it.
type Limits struct {
	rate    Rate
	nets    []netip.Prefix // empty: any network
	limiter *rate.Limiter  // nil without a rate limit
	// policy is the RateLimit-Policy field value, made once.
	policy string
}

// limitsPolicyName names our one quota policy in the RateLimit fields.
const limitsPolicyName = `"key"`

// newLimits returns the enforcement of r and nets with the bucket divided
// among share sidecars; nil when they limit nothing.
func newLimits(r Rate, nets []netip.Prefix, share int) *Limits {
	if r.Requests <= 0 && len(nets) == 0 {
		return nil
	}
	l := &Limits{rate: r, nets: nets}
	if r.Requests > 0 {
		share = max(share, 1)
		// This sidecar's part: the rate divided exactly, the burst rounded
		// down but never below one request.
		burst := max(r.Requests/share, 1)
		every := rate.Limit(float64(r.Requests) / float64(share) / r.Per.Seconds())
		l.limiter = rate.NewLimiter(every, burst)
		l.policy = limitsPolicyName + ";q=" + strconv.Itoa(burst) + ";w=" + strconv.FormatInt(int64(r.Per/time.Second), 10)
	}
	return l
}

// same reports whether l enforces exactly r and nets.
func (l *Limits) same(r Rate, nets []netip.Prefix) bool {
	if l == nil {
		return r.Requests <= 0 && len(nets) == 0
	}
	return l.rate == r && slices.Equal(l.nets, nets)
}

// Restricted reports whether the key may be used from some networks only:
// the caller must then find the client's address for Permits.
func (l *Limits) Restricted() bool { return l != nil && len(l.nets) > 0 }

// Permits reports whether a request from addr may use the key. An
// address that is not valid (unknown) is permitted only when the key has
// no networks.
func (l *Limits) Permits(addr netip.Addr) bool {
	if !l.Restricted() {
		return true
	}
	addr = addr.Unmap()
	for _, p := range l.nets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Take takes one request from the key's bucket at now. When the bucket is
// empty it returns false and how long until one request is allowed again.
// Without a rate limit it always allows. It takes no allocation.
func (l *Limits) Take(now time.Time) (bool, time.Duration) {
	if l == nil || l.limiter == nil {
		return true, 0
	}
	if l.limiter.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - l.limiter.TokensAt(now)
	wait := time.Duration(missing / float64(l.limiter.Limit()) * float64(time.Second))
	return false, max(wait, 0)
}

// Policy is the RateLimit-Policy field value of the key's rate limit, as
// draft-ietf-httpapi-ratelimit-headers-10 spells it (`"key";q=5;w=1`: q
// requests in a window of w seconds, this sidecar's share); "" without one.
func (l *Limits) Policy() string {
	if l == nil {
		return ""
	}
	return l.policy
}

// RefusedField is the RateLimit field value for a request refused by
// Take: no request remains (r=0), and one is available again in seconds
// (Take's wait rounded up, as in Retry-After).
func RefusedField(seconds int) string {
	return limitsPolicyName + ";r=0;t=" + strconv.Itoa(seconds)
}
