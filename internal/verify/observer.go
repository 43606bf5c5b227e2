package verify

import "time"

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
	// VerifyQueued: a verify call found every slot taken (see
	// Config.MaxVerifyCalls) and waits for one.
	VerifyQueued()
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
func (NopObserver) VerifyQueued()                            {}
func (NopObserver) StaleServed()                             {}
func (NopObserver) RevocationApplied()                       {}
func (NopObserver) EventApplied(int64, time.Duration)        {}
