// Package httpapi serves the key service's /v1 JSON API, health and
// readiness probes and Prometheus metrics. It turns HTTP into calls on
// keyservice.Service and domain errors into statuses, in one place.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/keyservice"
)

// Options configures a Server.
type Options struct {
	Logger *slog.Logger
	// Registry receives the server's metrics; a new one when nil.
	Registry *prometheus.Registry
	// Extra mounts more handlers (the web console) on the same mux.
	Extra func(mux *http.ServeMux)
	// MetricsElsewhere, when set, keeps /metrics off this handler (it
	// answers 404): MetricsHandler serves it on a listener of its own.
	MetricsElsewhere bool
}

// Server is the key service's HTTP handler.
type Server struct {
	svc     *keyservice.Service
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics
	leaks   *leakMetrics
	scrape  http.Handler // the registry's /metrics
	handler http.Handler
	parking *parking     // nil: long-polls wait in net/http
	parked  atomic.Int64 // long-polls parked now
}

// route is one endpoint of the API.
type route struct {
	pattern string
	handle  func(*Server, http.ResponseWriter, *http.Request)
	auth    bool // needs a bearer token
}

var routes = []route{
	{"POST /v1/orgs", (*Server).createOrg, true},
	{"GET /v1/me", (*Server).me, true},
	{"POST /v1/me/tokens", (*Server).createMyToken, true},
	{"GET /v1/me/tokens", (*Server).listMyTokens, true},
	{"DELETE /v1/me/tokens/{id}", (*Server).revokeMyToken, true},
	{"POST /v1/users", (*Server).createUser, true},
	{"GET /v1/users", (*Server).listUsers, true},
	{"DELETE /v1/users/{id}", (*Server).deleteUser, true},
	{"POST /v1/apps", (*Server).createApp, true},
	{"GET /v1/apps", (*Server).listApps, true},
	{"GET /v1/apps/{id}", (*Server).getApp, true},
	{"DELETE /v1/apps/{id}", (*Server).deleteApp, true},
	{"POST /v1/apps/{id}/verifier-tokens", (*Server).mintVerifierToken, true},
	{"GET /v1/apps/{id}/verifier-tokens", (*Server).listVerifierTokens, true},
	{"DELETE /v1/apps/{id}/verifier-tokens/{token_id}", (*Server).retireVerifierToken, true},
	{"POST /v1/apps/{id}/keys", (*Server).createKey, true},
	{"GET /v1/apps/{id}/keys", (*Server).listAppKeys, true},
	{"GET /v1/keys", (*Server).listKeys, true},
	{"DELETE /v1/keys/{id}", (*Server).revokeKey, true},
	{"POST /v1/keys/{id}/roll", (*Server).rollKey, true},
	{"POST /v1/keys/lookup", (*Server).lookupKey, true},
	{"PATCH /v1/keys/{id}", (*Server).updateKey, true},
	{leakRoute, (*Server).reportLeaks, false},
	{"POST /v1/secrets", (*Server).createSecret, true},
	{"GET /v1/secrets", (*Server).listSecrets, true},
	{"GET /v1/secrets/{name}", (*Server).getSecret, true},
	{"DELETE /v1/secrets/{name}", (*Server).deleteSecret, true},
	{"GET /v1/audit", (*Server).listAudit, true},
	{"POST /v1/verify", (*Server).verify, true},
	{"GET /v1/events", (*Server).events, true},
	{"POST /v1/usage", (*Server).reportUsage, true},
	{"GET /v1/keys/{id}/usage", (*Server).keyUsage, true},
	{"GET /v1/apps/{id}/usage", (*Server).appUsage, true},
	{"GET /healthz", (*Server).healthz, false},
	{"GET /readyz", (*Server).readyz, false},
}

// Routes lists the API's endpoints as "METHOD /path" (with {placeholders}),
// sorted; api/openapi.yaml must describe exactly these.
func Routes() []string {
	out := make([]string, 0, len(routes)+1)
	for _, r := range routes {
		out = append(out, r.pattern)
	}
	out = append(out, "GET /metrics")
	sort.Strings(out)
	return out
}

// New returns the API server for svc.
func New(svc *keyservice.Service, opts Options) *Server {
	s := &Server{svc: svc, log: opts.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg, svc)
	s.leaks = newLeakMetrics(reg)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "appkeys_feed_parked",
		Help: "Long-polls of the change feed waiting off net/http now (parked: their connection holds no buffers or handler goroutine); part of appkeys_feed_waiting.",
	}, func() float64 { return float64(s.parked.Load()) }))
	for _, rt := range routes {
		h := rt.handle
		if rt.auth {
			s.mux.HandleFunc(rt.pattern, s.authenticated(h))
		} else {
			s.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { h(s, w, r) })
		}
	}
	s.scrape = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if opts.MetricsElsewhere {
		// The API's own 404, as for any unknown path (not the console's
		// page, and no hint of where the metrics went).
		s.mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			writeErr(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
		})
	} else {
		s.mux.Handle("GET /metrics", s.scrape)
	}
	s.mux.HandleFunc("/v1/", s.noRoute)
	if opts.Extra != nil {
		opts.Extra(s.mux)
	}
	s.handler = s.middleware(s.mux)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// MetricsHandler serves GET /metrics, the same registry as the API's, and
// nothing else: for a listener of its own (Options.MetricsElsewhere), so
// that scrapes need not reach the API's address and the API's address
// tells the public nothing of the service's traffic.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.scrape)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, "not_found", "only GET /metrics is served here")
	})
	return mux
}

// noRoute answers unknown /v1 paths, and known paths with the wrong method,
// in the API's JSON error shape.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/v1/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeErr(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+strings.Join(allowed, " or "))
		return
	}
	writeErr(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
}

type ctxKey int

const (
	callerKey ctxKey = iota
	requestIDKey
)

// authenticated resolves the bearer token before h runs.
func (s *Server) authenticated(h func(*Server, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="appkeys"`)
			writeErr(w, http.StatusUnauthorized, "unauthorized", "missing bearer token: send Authorization: Bearer <token>")
			return
		}
		c, err := s.svc.Authenticate(r.Context(), token)
		if err != nil {
			if keyservice.KindOf(err) == keyservice.KindUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="appkeys", error="invalid_token"`)
			}
			s.fail(w, r, err)
			return
		}
		h(s, w, r.WithContext(context.WithValue(r.Context(), callerKey, c)))
	}
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

func caller(r *http.Request) keyservice.Caller {
	c, _ := r.Context().Value(callerKey).(keyservice.Caller)
	return c
}

// RequestID returns the request's id (from X-Request-Id or generated).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

type statusWriter struct {
	http.ResponseWriter
	status  int
	pattern string    // the route, for the request's metrics and log
	start   time.Time // when the request came in
	parked  bool      // the request's connection was taken from net/http: it answers, counts and logs itself
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware adds a request id, bounds the body, recovers panics, counts and
// logs every request. Logs carry the route pattern and path but never
// headers, query strings or bodies, where tokens and keys travel.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = apikey.Random(16)
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		r = r.WithContext(ctx)
		_, pattern := s.mux.Handler(r)
		if pattern == "" || pattern == "/v1/" {
			pattern = "unmatched"
		}
		sw := &statusWriter{ResponseWriter: w, pattern: pattern, start: start}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving request", "request_id", id, "route", pattern, "panic", p, "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeErr(sw, http.StatusInternalServerError, "internal", "internal error (request "+id+")")
				}
			}
			if !sw.parked {
				s.record(r, pattern, sw.status, start)
			}
		}()
		limit := int64(MaxBodyBytes)
		if pattern == leakRoute {
			limit = keyservice.MaxLeakReportBytes
		}
		if !limitBody(sw, r, limit) {
			return
		}
		if r.Body != nil {
			// Already within the limit; this keeps it so for any body
			// limitBody let through unread.
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(sw, r)
	})
}

// record counts and logs a request answered with status (0: 200).
func (s *Server) record(r *http.Request, pattern string, status int, start time.Time) {
	if status == 0 {
		status = http.StatusOK
	}
	d := time.Since(start)
	s.metrics.observeRequest(pattern, status, d)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	} else if pattern == "POST /v1/verify" || pattern == "GET /v1/events" || pattern == "GET /metrics" || strings.HasPrefix(pattern, "GET /healthz") || strings.HasPrefix(pattern, "GET /readyz") {
		level = slog.LevelDebug // the sidecars' and probes' traffic would drown the rest
	}
	s.log.LogAttrs(r.Context(), level, "request", slog.String("request_id", RequestID(r.Context())), slog.String("method", r.Method),
		slog.String("route", pattern), slog.String("path", logPath(r.URL.Path)), slog.Int("status", status),
		slog.Duration("duration", d))
}

// logPath hides path segments that carry a key or a token: a user who pastes
// a key where an id goes (DELETE /v1/keys/cak_…) must not put it in the logs.
func logPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if keyservice.HoldsCredential(s) {
			segs[i] = "REDACTED"
		}
	}
	return strings.Join(segs, "/")
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.svc.Ready(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "the key store is unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// fail writes err as the API's JSON error. Domain errors carry a message
// fit for the caller; anything else is logged and answered as a 500 that
// names only the request id.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var de *keyservice.Error
	if errors.As(err, &de) {
		status, code := statusOf(de.Kind)
		if de.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(de.RetryAfter.Seconds()))))
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
			s.log.Warn("store unavailable", "request_id", RequestID(r.Context()), "err", de.Err)
		}
		writeErr(w, status, code, de.Message)
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	id := RequestID(r.Context())
	s.log.Error("request failed", "request_id", id, "err", err)
	writeErr(w, http.StatusInternalServerError, "internal", "internal error (request "+id+")")
}

func statusOf(k keyservice.Kind) (int, string) {
	switch k {
	case keyservice.KindBadRequest:
		return http.StatusBadRequest, "bad_request"
	case keyservice.KindUnauthorized:
		return http.StatusUnauthorized, "unauthorized"
	case keyservice.KindForbidden:
		return http.StatusForbidden, "forbidden"
	case keyservice.KindNotFound:
		return http.StatusNotFound, "not_found"
	case keyservice.KindConflict:
		return http.StatusConflict, "conflict"
	case keyservice.KindInvalid:
		return http.StatusUnprocessableEntity, "invalid_argument"
	case keyservice.KindRateLimited:
		return http.StatusTooManyRequests, "rate_limited"
	case keyservice.KindUnavailable:
		return http.StatusServiceUnavailable, "unavailable"
	case keyservice.KindCursorExpired:
		return http.StatusGone, "cursor_expired"
	}
	return http.StatusInternalServerError, "internal"
}
