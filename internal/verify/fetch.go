package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// fetch asks the key service, sharing one call among concurrent callers for
// the same key, and falls back to a usable stale answer when it fails or
// when the request gives up while that call is still queued for a slot.
func (e *Engine) fetch(ctx context.Context, key string, fp fingerprint) (Decision, error) {
	if open, wait, last := e.brk.open(e.cfg.Now().UnixNano()); open {
		return e.fallback(fp, &UnavailableError{RetryAfter: wait, Err: breakerOpen(last)})
	}
	f := e.join(ctx, key, fp)
	select {
	case <-f.done:
	case <-ctx.Done():
		select {
		case <-f.done: // answered meanwhile: use it
		default:
			if e.leave(fp, f) {
				// Queued behind the cap until the request gave up: an
				// overloaded key service as far as this request can tell.
				return e.fallback(fp, &UnavailableError{RetryAfter: e.cfg.BreakerCooldown, Err: fmt.Errorf("%w: %w", ErrQueued, ctx.Err())})
			}
			// The shared call goes on for the others (and fills the cache).
			return Decision{}, ctx.Err()
		}
	}
	if errors.Is(f.err, ErrThrottled) {
		return Decision{}, f.err // a refusal of this key: nothing stale stands in
	}
	if f.err != nil {
		return e.fallback(fp, f.err)
	}
	return f.dec, nil
}

// call is the one shared verify call for a key. It waits for a slot while
// any request still waits for it (wait), then runs under its own timeout,
// detached from the requests' cancellation, so that the first request
// going away does not fail everyone waiting on the same key.
func (e *Engine) call(wait context.Context, f *flight, key string, fp fingerprint) (Decision, error) {
	now := e.cfg.Now().UnixNano()
	// A caller that missed the cache just before an earlier call for this
	// key stored its answer starts a new flight; the answer is here now.
	e.mu.Lock()
	c, gen := e.lookup(fp, now, false), e.gen
	e.mu.Unlock()
	switch {
	case c.state == stateFresh:
		return e.validDecision(&c.pos, SourceCache), nil
	case c.negFresh:
		return Decision{Result: Result{Code: c.neg.code}, Source: SourceCache}, nil
	}

	if !e.acquire(wait, f) {
		return Decision{}, errAbandoned
	}
	defer e.release()
	if ok, retry, last := e.brk.allow(e.cfg.Now().UnixNano()); !ok {
		return Decision{}, &UnavailableError{RetryAfter: retry, Err: breakerOpen(last)}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(wait), e.cfg.Timeout)
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
		return Decision{}, te
	}
	if err != nil {
		e.brk.failure(e.cfg.Now().UnixNano(), err)
		return Decision{}, &UnavailableError{RetryAfter: e.cfg.BreakerCooldown, Err: err}
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
	lim := e.store(fp, &res, now, gen)
	return Decision{Result: res, Source: SourceService, Limits: lim}, nil
}

// forget drops whatever valid answer is cached for fp.
func (e *Engine) forget(fp fingerprint) {
	e.mu.Lock()
	e.pos.remove(fp)
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

// store caches the answer res, and returns the enforcement of a valid
// key's limits (nil when it has none), which this request is held to too.
func (e *Engine) store(fp fingerprint, res *Result, now int64, gen uint64) *Limits {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !res.Valid {
		e.pos.remove(fp)
		if e.neg.Add(fp, negative{code: res.Code, stored: now}) {
			e.obs.CacheEvicted()
		}
		return nil
	}
	e.neg.Remove(fp)
	// A refresh with the same limits keeps the bucket: refilling it at
	// every refresh would hand a client a free burst each CacheTTL.
	var lim *Limits
	if old, ok := e.pos.get(fp, false); ok && old.lim.same(res.Rate, res.AllowedNets) {
		lim = old.lim
	} else {
		lim = newLimits(res.Rate, res.AllowedNets, e.cfg.LimitShare)
	}
	if e.gen != gen {
		// A revocation or purge landed while the call was in flight; this
		// answer may predate it, so it answers this request but is not kept.
		e.pos.remove(fp)
		return lim
	}
	if strings.IndexByte(res.KeyID, 0) >= 0 {
		return lim // cannot be stored unambiguously; never happens with real ids
	}
	// refusal let through only answers that expire after now.
	p := positive{idName: res.KeyID + "\x00" + res.KeyName, stored: e.sec(now), expires: e.secOf(res.ExpiresAt), lim: lim}
	if p.expires <= p.stored {
		// Expires within the second: answer this request, keep nothing.
		e.pos.remove(fp)
		return lim
	}
	if e.pos.add(fp, p) {
		e.obs.CacheEvicted()
	}
	return lim
}

// fallback answers when the key service could not: a valid answer still
// within StaleIfError (and the key's own expiry), or a permanent invalid
// answer, is served; anything else is cause.
func (e *Engine) fallback(fp fingerprint, cause error) (Decision, error) {
	now := e.cfg.Now().UnixNano()
	e.mu.Lock()
	c := e.lookup(fp, now, false)
	e.mu.Unlock()
	switch {
	case c.state == stateFresh || c.state == stateRevalidate || c.state == stateStale:
		e.obs.StaleServed()
		return e.validDecision(&c.pos, SourceStale), nil
	case c.negHeld && c.neg.code.permanent():
		e.obs.StaleServed()
		return Decision{Result: Result{Code: c.neg.code}, Source: SourceStale}, nil
	}
	return Decision{}, cause
}
