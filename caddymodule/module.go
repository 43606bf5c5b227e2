// Package caddymodule is the appkeys sidecar for Caddy: the HTTP handler
// http.handlers.appkey_auth and its Caddyfile directive appkey_auth. It lets
// a request through only with a live API key made for the configured app,
// asking the appkeys key service through the internal/verify engine.
//
// This package is the thin Caddy side (configuration, lifecycle, answers,
// metrics); the decisions, caches and the revocation feed live in
// internal/verify.
package caddymodule

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/verify"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the optional settings.
const (
	DefaultHeader             = "X-API-Key"
	DefaultCacheSize          = 100_000
	DefaultCacheTTL           = 5 * time.Minute
	DefaultNegativeTTL        = 10 * time.Second
	DefaultStaleIfError       = 5 * time.Minute
	DefaultTimeout            = 2 * time.Second
	DefaultFeedDownRevalidate = 30 * time.Second
	DefaultFailedAttempts     = 20
	DefaultFailedWindow       = time.Minute
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

// Handler lets a request through only with a live API key of the configured
// app, looked up at the appkeys key service and cached. A request without a
// key gets 401 with `WWW-Authenticate: Bearer realm="appkeys"`; one with a
// bad, unknown, expired, revoked, orphaned or other app's key gets the same
// 401 with `error="invalid_token"`, whatever the reason; when the key
// service cannot be reached and the key is not cached, 503 with Retry-After.
// A client address that keeps sending bad keys is throttled: past its
// failed attempts it gets 429 with Retry-After, unless its key is one the
// sidecar already holds as valid. Each other key takes an attempt before it
// is checked; the attempt comes back when the key proves good or the key
// service cannot answer (not the client's doing), and stays taken when the
// key is bad or the client hangs up before the verdict. When the key
// service itself refuses a bad key with 429 (the app's budget of failed
// verifies is spent), the client gets that 429 with Retry-After, the
// attempt stays taken, and good keys go on being checked.
//
// The key is read from the configured header (X-API-Key by default) or from
// `Authorization: Bearer`, and removed from the request before it goes
// upstream. The handler sets `X-Appkeys-Key-Id` and `X-Appkeys-App-Id` on
// the request (deleting any client-sent `X-Appkeys-*` header) and the
// placeholders `{http.auth.user.id}` (the key id) and
// `{http.auth.user.key_name}`.
//
// Caddy logs each request as it arrived, before any handler runs, and
// redacts only Authorization and cookies: a key sent in another header
// reaches the access log unless the log filters that header (see
// Caddyfile.example).
type Handler struct {
	// KeyService is the base URL of the appkeys key service, such as
	// `http://127.0.0.1:8700`.
	KeyService string `json:"key_service,omitempty"`

	// App is the id of the app (`app_…`) whose keys this handler admits; a
	// valid key of any other app is refused.
	App string `json:"app,omitempty"`

	// VerifierToken is the app's verifier token, which authenticates this
	// sidecar to the key service. Placeholders such as
	// `{env.APPKEYS_VERIFIER_TOKEN}` are replaced when the handler starts.
	VerifierToken string `json:"verifier_token,omitempty"`

	// Header is the request header that carries the key, `X-API-Key` by
	// default. `Authorization: Bearer <key>` is always accepted too.
	Header string `json:"header,omitempty"`

	// CacheSize is the number of valid keys kept in memory, 100000 by
	// default. Invalid answers are kept in a separate bound of the same
	// number, so unknown keys can never push out valid ones.
	CacheSize int `json:"cache_size,omitempty"`

	// CacheTTL is how long a valid answer is reused without asking the key
	// service, 5m by default. Revocations still take effect within a second
	// through the key service's change feed, and no answer outlives the
	// key's own expiry.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// NegativeTTL is how long an invalid answer is reused, 10s by default.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`

	// StaleIfError is how long after CacheTTL a valid answer may still be
	// used while the key service fails, 5m by default.
	StaleIfError caddy.Duration `json:"stale_if_error,omitempty"`

	// Timeout bounds each call to the key service, 2s by default.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// FeedDownRevalidate bounds how stale a revocation can be while the
	// change feed is down: past it, cached answers older than it are
	// checked again before use. 30s by default.
	FeedDownRevalidate caddy.Duration `json:"feed_down_revalidate,omitempty"`

	// CAFile is a PEM file of the certificate authorities that may sign an
	// https:// key service's certificate, for a key service behind a
	// private CA. The system's roots are used when it is not set.
	// Placeholders such as `{env.APPKEYS_CA_FILE}` are replaced.
	CAFile string `json:"ca_file,omitempty"`

	// TLSServerName is the name the key service's certificate must carry,
	// when it is not the host of key_service (an IP address, an internal
	// alias).
	TLSServerName string `json:"tls_server_name,omitempty"`

	// FailedAttempts throttles clients that send bad keys. Each client
	// address may send Limit bad keys at once and gets them back at Limit
	// per Window; past that its requests get 429 with Retry-After without
	// a check, unless the key is one already held as valid in the cache.
	// A key not held as valid takes an attempt before it is checked, so no
	// more than Limit of one address's keys are checked at once however
	// many it sends together; the attempt is given back when the key
	// proves good or the key service cannot answer, and kept for a bad key
	// and for a request whose client hangs up before the verdict. Good
	// keys never use up attempts, and IPv6 addresses count per /64. On by
	// default, at 20 per minute.
	FailedAttempts *FailedAttempts `json:"failed_attempts,omitempty"`

	// TrustedNetworks lists client networks, as CIDR ranges or single
	// addresses, that are never throttled. The client address is the one
	// Caddy determines, which honours the server's `trusted_proxies`; behind
	// a load balancer, configure those, or every client shares the
	// balancer's address.
	TrustedNetworks []string `json:"trusted_networks,omitempty"`

	logger  *zap.Logger
	header  string // canonical form of Header
	shared  *shared
	poolKey string
	metrics *handlerMetrics

	throttle    *verify.Throttle // nil when off
	throttleKey string
	trusted     []netip.Prefix
}

// FailedAttempts is the per-client throttle on bad keys.
type FailedAttempts struct {
	// Off turns the throttle off.
	Off bool `json:"off,omitempty"`

	// Limit is how many bad keys one client address may send at once,
	// 20 by default.
	Limit int `json:"limit,omitempty"`

	// Window is how long it takes to earn Limit attempts back, 1m by
	// default.
	Window caddy.Duration `json:"window,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.appkey_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults, registers the metrics in this config's
// registry and attaches to the engine shared by every config load with the
// same settings, so the cache and the feed subscriber survive a reload.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.setDefaults()
	if err := h.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	token := repl.ReplaceAll(h.VerifierToken, "")
	if token == "" {
		return errors.New("appkey_auth: verifier_token is empty after replacing placeholders")
	}
	tlsConfig, tlsID, err := h.tlsConfig(repl)
	if err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("appkey_auth: %w", err)
	}
	h.metrics = newHandlerMetrics(h.App)
	h.header = http.CanonicalHeaderKey(h.Header)

	s := settings{
		keyService: strings.TrimRight(h.KeyService, "/"), app: h.App, token: token, tls: tlsConfig, tlsID: tlsID,
		engine: verify.Config{
			App:                h.App,
			CacheSize:          h.CacheSize,
			CacheTTL:           time.Duration(h.CacheTTL),
			NegativeTTL:        time.Duration(h.NegativeTTL),
			StaleIfError:       time.Duration(h.StaleIfError),
			Timeout:            time.Duration(h.Timeout),
			FeedDownRevalidate: time.Duration(h.FeedDownRevalidate),
		},
	}
	key := s.poolKey()
	v, _, err := engines.LoadOrNew(key, func() (caddy.Destructor, error) { return newShared(s, h.logger) })
	if err != nil {
		return fmt.Errorf("appkey_auth: %w", err)
	}
	h.shared, h.poolKey = v.(*shared), key
	return h.provisionThrottle()
}

// tlsConfig builds the TLS settings for the key service from ca_file and
// tls_server_name (nil when neither is set), and an id of them for the
// pool keys, so that a reload with a changed CA builds a new client.
func (h *Handler) tlsConfig(repl *caddy.Replacer) (*tls.Config, string, error) {
	if h.CAFile == "" && h.TLSServerName == "" {
		return nil, "", nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: h.TLSServerName}
	sum := sha256.New()
	sum.Write([]byte(h.TLSServerName + "\x00"))
	if h.CAFile != "" {
		path := repl.ReplaceAll(h.CAFile, "")
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("appkey_auth: ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("appkey_auth: ca_file %s: no PEM certificate in it", path)
		}
		sum.Write(pem)
	}
	return cfg, hex.EncodeToString(sum.Sum(nil)[:8]), nil
}

// provisionThrottle attaches to the failed-attempts throttle shared by
// every config load with the same limits, so a reload does not hand a
// guessing client a fresh budget.
func (h *Handler) provisionThrottle() error {
	h.trusted = h.trusted[:0]
	for _, n := range h.TrustedNetworks {
		p, err := caddyhttp.CIDRExpressionToPrefix(n)
		if err != nil {
			return fmt.Errorf("appkey_auth: trusted_networks: %w", err)
		}
		h.trusted = append(h.trusted, p)
	}
	fa := h.FailedAttempts
	if fa.Off {
		return nil
	}
	key := fmt.Sprintf("%s|%d|%s", h.App, fa.Limit, time.Duration(fa.Window))
	v, _, err := throttles.LoadOrNew(key, func() (caddy.Destructor, error) {
		t, err := verify.NewThrottle(verify.ThrottleConfig{Limit: fa.Limit, Window: time.Duration(fa.Window)})
		return sharedThrottle{t}, err
	})
	if err != nil {
		return fmt.Errorf("appkey_auth: failed_attempts: %w", err)
	}
	h.throttle, h.throttleKey = v.(sharedThrottle).Throttle, key
	return nil
}

func (h *Handler) setDefaults() {
	if h.Header == "" {
		h.Header = DefaultHeader
	}
	if h.CacheSize == 0 {
		h.CacheSize = DefaultCacheSize
	}
	setDuration(&h.CacheTTL, DefaultCacheTTL)
	setDuration(&h.NegativeTTL, DefaultNegativeTTL)
	setDuration(&h.StaleIfError, DefaultStaleIfError)
	setDuration(&h.Timeout, DefaultTimeout)
	setDuration(&h.FeedDownRevalidate, DefaultFeedDownRevalidate)
	if h.FailedAttempts == nil {
		h.FailedAttempts = new(FailedAttempts)
	}
	if !h.FailedAttempts.Off {
		if h.FailedAttempts.Limit == 0 {
			h.FailedAttempts.Limit = DefaultFailedAttempts
		}
		setDuration(&h.FailedAttempts.Window, DefaultFailedWindow)
	}
}

func setDuration(d *caddy.Duration, v time.Duration) {
	if *d == 0 {
		*d = caddy.Duration(v)
	}
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	u, err := url.Parse(h.KeyService)
	switch {
	case h.KeyService == "":
		return errors.New("appkey_auth: key_service is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("appkey_auth: key_service %q must be an http:// or https:// URL", h.KeyService)
	case !strings.HasPrefix(h.App, "app_"):
		return fmt.Errorf("appkey_auth: app must be an app id (app_…), got %q", h.App)
	case h.VerifierToken == "":
		return errors.New("appkey_auth: verifier_token is required")
	case h.Header != "" && !validHeaderName(h.Header):
		return fmt.Errorf("appkey_auth: header %q is not a valid header name", h.Header)
	case h.CacheSize < 0:
		return errors.New("appkey_auth: cache_size must be positive")
	case h.CacheTTL < 0 || h.NegativeTTL < 0 || h.StaleIfError < 0 || h.Timeout < 0 || h.FeedDownRevalidate < 0:
		return errors.New("appkey_auth: durations must not be negative")
	case (h.CAFile != "" || h.TLSServerName != "") && u.Scheme != "https":
		return fmt.Errorf("appkey_auth: ca_file and tls_server_name need an https:// key_service, got %q", h.KeyService)
	case h.FailedAttempts != nil && (h.FailedAttempts.Limit < 0 || h.FailedAttempts.Window < 0):
		return errors.New("appkey_auth: failed_attempts: limit and window must be positive")
	}
	for _, n := range h.TrustedNetworks {
		if _, err := caddyhttp.CIDRExpressionToPrefix(n); err != nil {
			return fmt.Errorf("appkey_auth: trusted_networks: %w", err)
		}
	}
	return nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// Cleanup releases this load's hold on the shared engine; the last holder
// stops its feed subscriber and waits for its calls to end.
func (h *Handler) Cleanup() error {
	if h.poolKey == "" {
		return nil
	}
	_, err := engines.Delete(h.poolKey)
	if h.throttleKey != "" {
		_, terr := throttles.Delete(h.throttleKey)
		err = errors.Join(err, terr)
	}
	return err
}

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
	if d, ok := h.shared.engine.Cached(key); ok {
		h.metrics.allowed.Inc()
		return h.admit(w, r, next, d)
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
	d, err := h.shared.engine.Check(r.Context(), key)
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
		if limited {
			h.throttle.Refund(addr) // the key service's failure, not the client's
		}
		h.metrics.unavailable.Inc()
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
	if d.Source == verify.SourceStale {
		h.metrics.allowedStale.Inc()
	} else {
		h.metrics.allowed.Inc()
	}
	return h.admit(w, r, next, d)
}

// admit lets the request with a valid key through, naming the key.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, d verify.Decision) error {
	r.Header[HeaderKeyID] = []string{d.KeyID}
	r.Header[HeaderAppID] = []string{d.AppID}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", d.KeyID)
	repl.Set("http.auth.user.key_name", d.KeyName)
	return next.ServeHTTP(w, r)
}

// limitedAddr returns the client address failed attempts count against,
// and false when the throttle is off, the address is in a trusted network,
// or it cannot be known. The address is Caddy's client IP, which honours
// the server's trusted_proxies.
func (h *Handler) limitedAddr(r *http.Request) (netip.Addr, bool) {
	if h.throttle == nil {
		return netip.Addr{}, false
	}
	var addr netip.Addr
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return netip.Addr{}, false
		}
		addr = a
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr()
	} else {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
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

// settings is what makes two handler instances share an engine.
type settings struct {
	keyService, app, token string
	tls                    *tls.Config
	tlsID                  string // a hash of the TLS settings, for the pool keys
	engine                 verify.Config
}

// poolKey names the shared engine. The token enters only as a hash, so the
// pool's keys are safe to print while debugging.
func (s settings) poolKey() string {
	sum := sha256.Sum256([]byte(s.token))
	return fmt.Sprintf("%s|%s|%s|%s|%d|%s|%s|%s|%s|%s", s.keyService, s.app, hex.EncodeToString(sum[:8]), s.tlsID,
		s.engine.CacheSize, s.engine.CacheTTL, s.engine.NegativeTTL, s.engine.StaleIfError, s.engine.Timeout, s.engine.FeedDownRevalidate)
}

func (s settings) feedKey() string {
	sum := sha256.Sum256([]byte(s.token))
	return s.keyService + "|" + s.app + "|" + hex.EncodeToString(sum[:8]) + "|" + s.tlsID
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
