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
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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
	DefaultUsageInterval      = 10 * time.Second
	DefaultUsageDropAfter     = 5 * time.Minute
	DefaultMaxVerifyCalls     = 64
	// MaxMaxVerifyCalls bounds max_verify_calls: far above what one key
	// service answers at once, low enough that a typo is caught.
	MaxMaxVerifyCalls = 65536
)

// maxLimitShare bounds limit_share: past it, most keys' share would round
// to the one request per window every sidecar keeps.
const maxLimitShare = 10_000

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

	// LimitShare divides each key's rate limit among this many sidecars
	// of the app, 1 by default. Every sidecar counts a key's requests on
	// its own, so with N replicas of an app a client spreading its
	// requests may get up to N times the key's limit; with limit_share N
	// each allows its Nth (rounded down, at least one request per window),
	// which keeps the whole at or under the limit when the load is spread
	// evenly, and refuses early when it is not.
	LimitShare int `json:"limit_share,omitempty"`

	// TrustedNetworks lists client networks, as CIDR ranges or single
	// addresses, that are never throttled. The client address is the one
	// Caddy determines, which honours the server's `trusted_proxies`; behind
	// a load balancer, configure those, or every client shares the
	// balancer's address.
	TrustedNetworks []string `json:"trusted_networks,omitempty"`

	// UsageInterval is how often the requests counted per key and
	// outcome are reported to the key service (POST /v1/usage), and at
	// shutdown. Default 10s.
	UsageInterval caddy.Duration `json:"usage_interval,omitempty"`

	// UsageDropAfter is how long counts wait for a key service that does
	// not take them before they are dropped (counted in
	// appkey_auth_usage_dropped_total). Default 5m.
	UsageDropAfter caddy.Duration `json:"usage_drop_after,omitempty"`
	// MaxVerifyCalls bounds the verify calls this sidecar has in flight to
	// the key service at once, 64 by default; -1 lifts the bound. Past it,
	// a request whose key is not cached queues for a free slot for as long
	// as the request lasts: a client that gives up (or whose deadline
	// passes) leaves the queue at once and is answered 503 with
	// Retry-After, as when the key service is unreachable. Concurrent
	// requests with the same key share one call and one place in the
	// queue. It keeps a sidecar restarting cold in front of many distinct
	// keys from opening a call per key at once.
	MaxVerifyCalls int `json:"max_verify_calls,omitempty"`

	logger  *zap.Logger
	header  string // canonical form of Header
	engine  *pooledEngine
	poolKey string
	metrics *handlerMetrics

	usage    *pooledUsage
	usageKey string

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

// Provision fills in defaults, checks the configuration, registers the
// metrics in this config's registry and attaches to the engine shared by
// every config load with the same settings, so the cache and the feed
// subscriber survive a reload.
//
// The checks come first and run once per load, here: nothing is built from
// a configuration they refuse (an engine would start a feed subscriber
// polling the key service), and there is no Validate method for Caddy to
// run them a second time.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.setDefaults()
	if err := h.validate(); err != nil {
		return err
	}
	h.trusted = make([]netip.Prefix, 0, len(h.TrustedNetworks))
	for _, n := range h.TrustedNetworks {
		p, err := caddyhttp.CIDRExpressionToPrefix(n)
		if err != nil {
			return fmt.Errorf("appkey_auth: trusted_networks: %w", err)
		}
		h.trusted = append(h.trusted, p)
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
		keyService: strings.TrimRight(h.KeyService, "/"), app: h.App,
		token: token, tls: tlsConfig, tlsID: tlsID,
		engine: verify.Config{
			App:                h.App,
			CacheSize:          h.CacheSize,
			CacheTTL:           time.Duration(h.CacheTTL),
			NegativeTTL:        time.Duration(h.NegativeTTL),
			StaleIfError:       time.Duration(h.StaleIfError),
			Timeout:            time.Duration(h.Timeout),
			FeedDownRevalidate: time.Duration(h.FeedDownRevalidate),
			MaxVerifyCalls:     h.MaxVerifyCalls,
			LimitShare:         h.LimitShare,
		},
	}
	key := s.poolKey()
	v, _, err := engines.LoadOrNew(key, func() (caddy.Destructor, error) { return newPooledEngine(s, h.logger) })
	if err != nil {
		return fmt.Errorf("appkey_auth: %w", err)
	}
	h.engine, h.poolKey = v.(*pooledEngine), key
	h.engine.hold(h, token)
	if err := h.provisionUsage(s); err != nil {
		return err
	}
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
	fa := h.FailedAttempts
	if fa.Off {
		return nil
	}
	key := fmt.Sprintf("%s|%d|%s", h.App, fa.Limit, time.Duration(fa.Window))
	v, _, err := throttles.LoadOrNew(key, func() (caddy.Destructor, error) {
		t, err := verify.NewThrottle(verify.ThrottleConfig{Limit: fa.Limit, Window: time.Duration(fa.Window)})
		return pooledThrottle{t}, err
	})
	if err != nil {
		return fmt.Errorf("appkey_auth: failed_attempts: %w", err)
	}
	h.throttle, h.throttleKey = v.(pooledThrottle).Throttle, key
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
	setDuration(&h.UsageInterval, DefaultUsageInterval)
	setDuration(&h.UsageDropAfter, DefaultUsageDropAfter)
	if h.MaxVerifyCalls == 0 {
		h.MaxVerifyCalls = DefaultMaxVerifyCalls
	}
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

// validate checks the configuration, defaults filled in or not.
func (h *Handler) validate() error {
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
	case h.LimitShare < 0 || h.LimitShare > maxLimitShare:
		return fmt.Errorf("appkey_auth: limit_share must be from 1 to %d", maxLimitShare)
	case h.CacheTTL < 0 || h.NegativeTTL < 0 || h.StaleIfError < 0 || h.Timeout < 0 || h.FeedDownRevalidate < 0 ||
		h.UsageInterval < 0 || h.UsageDropAfter < 0:
		return errors.New("appkey_auth: durations must not be negative")
	case (h.CAFile != "" || h.TLSServerName != "") && u.Scheme != "https":
		return fmt.Errorf("appkey_auth: ca_file and tls_server_name need an https:// key_service, got %q", h.KeyService)
	case h.MaxVerifyCalls < -1 || h.MaxVerifyCalls > MaxMaxVerifyCalls:
		return fmt.Errorf("appkey_auth: max_verify_calls must be 1 to %d, or -1 for no bound; got %d", MaxMaxVerifyCalls, h.MaxVerifyCalls)
	case h.FailedAttempts != nil && (h.FailedAttempts.Limit < 0 || h.FailedAttempts.Window < 0):
		return errors.New("appkey_auth: failed_attempts: limit and window must be positive")
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
	h.engine.release(h)
	_, err := engines.Delete(h.poolKey)
	if h.usageKey != "" {
		h.usage.tokens.release(h)
		_, uerr := usages.Delete(h.usageKey)
		err = errors.Join(err, uerr)
	}
	if h.throttleKey != "" {
		_, terr := throttles.Delete(h.throttleKey)
		err = errors.Join(err, terr)
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
