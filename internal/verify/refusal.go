package verify

import "time"

// refusal checks a valid answer against what the engine knows itself: the
// key must be of its app and must expire after the engine's clock. It
// returns the code to refuse it with (CodeWrongApp, CodeExpired), or 0 for
// an answer that is not valid or passes, so that a key service that errs
// or lies (or whose clock runs behind) never gets a key admitted.
//
// Every key of this product expires: the key service requires expires_at
// when it creates a key and sends it with every valid answer. A valid
// answer without one is refused as expired too: the sidecar could not
// bound how long to trust it, and a cache entry without an end would
// outlive the key.
func (e *Engine) refusal(res *Result, now int64) Code {
	switch {
	case !res.Valid:
		return 0
	case res.AppID != e.cfg.App:
		return CodeWrongApp
	case !res.ExpiresAt.After(time.Unix(0, now)):
		return CodeExpired
	}
	return 0
}
