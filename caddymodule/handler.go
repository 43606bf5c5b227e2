package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/verify"
)

// Headers the handler sets on the request that goes upstream. Any header a
// client sends under the X-Appkeys- prefix is deleted first, so an upstream
// can trust them.
const (
	HeaderKeyID       = "X-Appkeys-Key-Id"
	HeaderAppID       = "X-Appkeys-App-Id"
	identityPrefix    = "X-Appkeys-"
	challenge         = `Bearer realm="appkeys"`
	challengeBadToken = `Bearer realm="appkeys", error="invalid_token"`
)

// ServeHTTP checks the request's key.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	key := h.takeKey(r.Header)
	// Client-sent identity headers never pass, whatever the outcome.
	for name := range r.Header {
		if strings.HasPrefix(name, identityPrefix) {
			delete(r.Header, name)
		}
	}
	if key == "" {
		h.metrics.missing.Inc()
		w.Header().Set("WWW-Authenticate", challenge)
		return caddyhttp.Error(http.StatusUnauthorized, errors.New("no API key"))
	}
	// A key already known good costs the throttle nothing: the hot path
	// stays free, and a throttled client with a good key still gets in.
	if d, ok := h.engine.Cached(key); ok {
		return h.admit(w, r, next, d, h.metrics.allowed)
	}
	addr, limited := h.limitedAddr(r)
	if limited {
		// The attempt is taken before the check, so that concurrent bad
		// keys cannot all pass, and given back only once the key proves
		// good or the key service could not answer.
		if ok, wait := h.throttle.Reserve(addr); !ok {
			h.metrics.throttled.Inc()
			h.metrics.throttledReq.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
			return caddyhttp.Error(http.StatusTooManyRequests, errors.New("too many bad API keys from this client address"))
		}
	}
	d, err := h.engine.Check(r.Context(), key)
	if err != nil {
		var te *verify.ThrottledError
		if errors.As(err, &te) {
			// The key service refused the key, one failure too many for
			// the app: the client's doing, so its attempt stays taken.
			h.metrics.throttledByService.Inc()
			if c := h.logger.Check(zapcore.DebugLevel, "key service throttled the key"); c != nil {
				c.Write(zap.Error(err))
			}
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(te.RetryAfter)))
			return caddyhttp.Error(http.StatusTooManyRequests, errors.New("too many bad API keys for this app"))
		}
		if !errors.Is(err, verify.ErrUnavailable) {
			// The client went away before the verdict: its attempt stays
			// taken, or sending a key and hanging up would guess for free.
			return err
		}
		if limited && !errors.Is(r.Context().Err(), context.Canceled) {
			// The key service's failure, not the client's. A client that
			// hung up while queued for a verify slot keeps its attempt
			// taken, like any client that goes before the verdict.
			h.throttle.Refund(addr)
		}
		if errors.Is(err, verify.ErrQueued) {
			h.metrics.unavailableQueued.Inc()
		} else {
			h.metrics.unavailable.Inc()
		}
		var ue *verify.UnavailableError
		wait := time.Second
		if errors.As(err, &ue) {
			wait = ue.RetryAfter
		}
		if c := h.logger.Check(zapcore.DebugLevel, "key service unavailable"); c != nil {
			c.Write(zap.Error(err))
		}
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		// Caddy logs a 5xx at error level with this text: the cause (a
		// refused connection, a certificate that did not verify) tells the
		// operator what to fix. It never holds the key.
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("API key could not be checked: %w", err))
	}
	if !d.Valid {
		h.metrics.denied(d.Code).Inc()
		if c := h.logger.Check(zapcore.DebugLevel, "API key refused"); c != nil {
			c.Write(zap.Stringer("code", d.Code), zap.String("key_id", d.KeyID), zap.Stringer("source", d.Source))
		}
		w.Header().Set("WWW-Authenticate", challengeBadToken)
		return caddyhttp.Error(http.StatusUnauthorized, errors.New("invalid API key"))
	}
	if limited {
		h.throttle.Refund(addr)
	}
	allowed := h.metrics.allowed
	if d.Source == verify.SourceStale {
		allowed = h.metrics.allowedStale
	}
	return h.admit(w, r, next, d, allowed)
}

// admit lets the request with a valid key through, naming the key, once
// the key's limits allow it; allowed counts it then.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, d verify.Decision, allowed prometheus.Counter) error {
	if d.Limits != nil {
		if err := h.holdToLimits(w, r, d); err != nil {
			return err
		}
	}
	allowed.Inc()
	h.countUsage(d.KeyID, verify.OutcomeAllowed)
	// One allocation for both values; each slice is capped at its own, so
	// an append to one never writes into the other.
	v := &[2]string{d.KeyID, d.AppID}
	r.Header[HeaderKeyID] = v[0:1:1]
	r.Header[HeaderAppID] = v[1:2:2]
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", d.KeyID)
	repl.Set("http.auth.user.key_name", d.KeyName)
	return next.ServeHTTP(w, r)
}

// Errors of requests refused by their key's limits. They reach Caddy's log,
// never the client: the 403 is the same for every address refused.
var (
	errOutsideNetworks = errors.New("API key not allowed from this client address")
	errOverRateLimit   = errors.New("API key over its rate limit")
)

// holdToLimits holds a request with a valid key to the key's limits, from
// the cache with no call: its networks first, so a client outside them
// never spends the key's rate, then its rate. It answers 403 (the same for
// every refused address) or 429 with Retry-After and the RateLimit fields,
// and nil when the request may go on.
func (h *Handler) holdToLimits(w http.ResponseWriter, r *http.Request, d verify.Decision) error {
	if d.Limits.Restricted() && !d.Limits.Permits(clientAddr(r)) {
		h.limitRefused(d, limitForbidden)
		return caddyhttp.Error(http.StatusForbidden, errOutsideNetworks)
	}
	if ok, wait := d.Limits.Take(time.Now()); !ok {
		h.limitRefused(d, limitRateLimited)
		secs := retryAfterSeconds(wait)
		hdr := w.Header()
		hdr.Set("Retry-After", strconv.Itoa(secs))
		hdr.Set("RateLimit-Policy", d.Limits.Policy())
		hdr.Set("RateLimit", verify.RefusedField(secs))
		return caddyhttp.Error(http.StatusTooManyRequests, errOverRateLimit)
	}
	return nil
}

// limitRefusal says which of a key's limits refused a request.
type limitRefusal uint8

const (
	limitForbidden   limitRefusal = iota + 1 // outside allowed_cidrs: 403
	limitRateLimited                         // over rate_limit: 429
)

// limitRefused is the one place every request refused by its key's limits
// passes, with the key it presented: it counts the refusal in
// appkey_auth_requests_total (result "forbidden" or "rate_limited"). Usage
// counting per key and outcome belongs here too.
func (h *Handler) limitRefused(d verify.Decision, why limitRefusal) {
	ctr, outcome := h.metrics.rateLimited, verify.OutcomeRateLimited
	if why == limitForbidden {
		ctr, outcome = h.metrics.forbidden, verify.OutcomeForbidden
	}
	ctr.Inc()
	h.countUsage(d.KeyID, outcome)
	if c := h.logger.Check(zapcore.DebugLevel, "API key refused by its limits"); c != nil {
		c.Write(zap.String("key_id", d.KeyID), zap.Bool("rate_limited", why == limitRateLimited))
	}
}

// clientAddr is the request's client address as Caddy determined it,
// which honours the server's trusted_proxies: a forwarded address counts
// only from a trusted proxy. It is not valid when it cannot be known.
func clientAddr(r *http.Request) netip.Addr {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return netip.Addr{}
		}
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// limitedAddr returns the client address failed attempts count against,
// and false when the throttle is off, the address is in a trusted network,
// or it cannot be known. The address is Caddy's client IP, which honours
// the server's trusted_proxies.
func (h *Handler) limitedAddr(r *http.Request) (netip.Addr, bool) {
	if h.throttle == nil {
		return netip.Addr{}, false
	}
	addr := clientAddr(r)
	if !addr.IsValid() {
		return netip.Addr{}, false
	}
	for _, p := range h.trusted {
		if p.Contains(addr) {
			return netip.Addr{}, false
		}
	}
	return addr, true
}

// takeKey returns the request's key and removes it from the request: the
// configured header wins; otherwise `Authorization: Bearer`. An
// Authorization header that did not carry the key (the app's own token
// next to an X-API-Key) is left for the upstream.
func (h *Handler) takeKey(hdr http.Header) string {
	return takeKey(hdr, h.header)
}

func takeKey(hdr http.Header, name string) string {
	if name != "Authorization" {
		if v, ok := hdr[name]; ok {
			delete(hdr, name)
			if a := hdr["Authorization"]; len(a) > 0 && strings.Contains(a[0], apikey.Prefix) {
				// A second copy of a key must not go upstream either.
				delete(hdr, "Authorization")
			}
			if len(v) > 0 {
				return strings.TrimSpace(v[0])
			}
			return ""
		}
	}
	v := hdr["Authorization"]
	if len(v) == 0 {
		return ""
	}
	const scheme = "bearer "
	a := strings.TrimSpace(v[0])
	if len(a) <= len(scheme) || !strings.EqualFold(a[:len(scheme)], scheme) {
		return ""
	}
	delete(hdr, "Authorization")
	return strings.TrimSpace(a[len(scheme):])
}

func retryAfterSeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	return int(min(max(s, 1), 3600))
}
