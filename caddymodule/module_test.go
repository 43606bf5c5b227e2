package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// provision builds a handler the way Caddy does and cleans it up after.
func provision(t testing.TB, h *Handler) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	// Without a running config Caddy gives a development logger at debug
	// level; warnings are enough to read a failure by.
	h.logger = h.logger.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	// The feed's first answer (its head) purges the cache; wait for it so
	// that what a test caches stays cached.
	for deadline := time.Now().Add(10 * time.Second); !h.engine.feed.feed.Stats().Up; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("feed never came up")
		}
	}
	t.Cleanup(func() {
		if err := h.Cleanup(); err != nil {
			t.Error(err)
		}
	})
	return h
}

// serve runs one request through the handler to a recording upstream and
// returns the status, the answer's headers and what the upstream saw.
func serve(t *testing.T, h *Handler, req *http.Request) (status int, answer http.Header, upstream *http.Request, repl *caddy.Replacer) {
	t.Helper()
	repl = caddy.NewReplacer()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		upstream = r.Clone(r.Context())
		w.WriteHeader(http.StatusOK)
		return nil
	})
	err := h.ServeHTTP(rec, req, next)
	status = rec.Code
	if herr, ok := err.(caddyhttp.HandlerError); ok {
		status = herr.StatusCode
		if strings.Contains(herr.Error(), "cak_") {
			t.Errorf("error text carries a key: %v", herr)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return status, rec.Header(), upstream, repl
}

func TestServeHTTPAnswers(t *testing.T) {
	ks := verifytest.New(t)
	const app = "app_one"
	h := provision(t, &Handler{KeyService: ks.URL, App: app, VerifierToken: ks.Token, Header: "X-Custom-Key"})
	valid := ks.AddKeyWithCode(t, "key_ok", app, "VALID")
	other := ks.AddKeyWithCode(t, "key_other", "app_two", "VALID")
	revoked := ks.AddKeyWithCode(t, "key_rev", app, "REVOKED")

	tests := []struct {
		name      string
		headers   map[string]string
		status    int
		challenge string
	}{
		{"no key", nil, 401, `Bearer realm="appkeys"`},
		{"empty header", map[string]string{"X-Custom-Key": ""}, 401, `Bearer realm="appkeys"`},
		{"default header is not ours", map[string]string{"X-API-Key": valid}, 401, `Bearer realm="appkeys"`},
		{"malformed", map[string]string{"X-Custom-Key": "cak_nope"}, 401, `Bearer realm="appkeys", error="invalid_token"`},
		{"unknown", map[string]string{"X-Custom-Key": mustKey(t)}, 401, `Bearer realm="appkeys", error="invalid_token"`},
		{"revoked", map[string]string{"X-Custom-Key": revoked}, 401, `Bearer realm="appkeys", error="invalid_token"`},
		{"other app", map[string]string{"X-Custom-Key": other}, 401, `Bearer realm="appkeys", error="invalid_token"`},
		{"not bearer", map[string]string{"Authorization": "Basic " + valid}, 401, `Bearer realm="appkeys"`},
		{"valid header", map[string]string{"X-Custom-Key": valid}, 200, ""},
		{"valid bearer", map[string]string{"Authorization": "bearer " + valid}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			req.Header.Set("X-Appkeys-Key-Id", "key_spoofed")
			req.Header.Set("X-Appkeys-Admin", "yes")
			status, answer, up, repl := serve(t, h, req)
			if status != tc.status {
				t.Fatalf("status %d; want %d", status, tc.status)
			}
			if got := answer.Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate %q; want %q", got, tc.challenge)
			}
			if status != 200 {
				return
			}
			if up.Header.Get("X-Custom-Key") != "" || up.Header.Get("Authorization") != "" {
				t.Fatalf("the key went upstream: %v", up.Header)
			}
			if up.Header.Get(HeaderKeyID) != "key_ok" || up.Header.Get(HeaderAppID) != app || up.Header.Get("X-Appkeys-Admin") != "" {
				t.Fatalf("identity headers upstream: %v", up.Header)
			}
			if id, _ := repl.GetString("http.auth.user.id"); id != "key_ok" {
				t.Fatalf("http.auth.user.id = %q", id)
			}
			if name, _ := repl.GetString("http.auth.user.key_name"); name != "name of key_ok" {
				t.Fatalf("http.auth.user.key_name = %q", name)
			}
		})
	}
}

func TestServeHTTPKeepsAppsOwnAuthorization(t *testing.T) {
	ks := verifytest.New(t)
	h := provision(t, &Handler{KeyService: ks.URL, App: "app_one", VerifierToken: ks.Token})
	valid := ks.AddKeyWithCode(t, "key_ok", "app_one", "VALID")
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-API-Key", valid)
	req.Header.Set("Authorization", "Bearer app-session-token")
	status, _, up, _ := serve(t, h, req)
	if status != 200 || up.Header.Get("Authorization") != "Bearer app-session-token" || up.Header.Get("X-Api-Key") != "" {
		t.Fatalf("status %d, upstream headers %v", status, up.Header)
	}
}

func TestServeHTTPUnavailable(t *testing.T) {
	ks := verifytest.New(t)
	h := provision(t, &Handler{KeyService: ks.URL, App: "app_one", VerifierToken: ks.Token, StaleIfError: caddy.Duration(time.Minute)})
	valid := ks.AddKeyWithCode(t, "key_ok", "app_one", "VALID")
	req := func(k string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-API-Key", k)
		return r
	}
	if s, _, _, _ := serve(t, h, req(valid)); s != 200 {
		t.Fatalf("setup: %d", s)
	}
	ks.SetFault(verifytest.HTTP503)
	status, answer, _, _ := serve(t, h, req(mustKey(t)))
	if status != 503 || answer.Get("Retry-After") == "" || answer.Get("WWW-Authenticate") != "" {
		t.Fatalf("unknown key, service down: %d %v; want 503 with Retry-After", status, answer)
	}
	if s, _, _, _ := serve(t, h, req(valid)); s != 200 {
		t.Fatalf("cached key, service down: %d; want 200", s)
	}
}

func TestProvisionSharesEngineAcrossReloads(t *testing.T) {
	ks := verifytest.New(t)
	cfg := Handler{KeyService: ks.URL, App: "app_one", VerifierToken: ks.Token}
	a, b := cfg, cfg
	provision(t, &a)
	valid := ks.AddKeyWithCode(t, "key_ok", "app_one", "VALID")
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", valid)
	serve(t, &a, r)
	// The "reload": a new instance is provisioned, then the old one cleaned up.
	provision(t, &b)
	if a.engine != b.engine {
		t.Fatal("a reload with the same settings built a new engine")
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	a.poolKey = "" // already cleaned up
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", valid)
	serve(t, &b, r)
	if n := ks.VerifyCalls.Load(); n != 1 {
		t.Fatalf("%d verify calls; the cache did not survive the reload", n)
	}
}

func TestValidate(t *testing.T) {
	ok := Handler{KeyService: "http://127.0.0.1:8700", App: "app_x", VerifierToken: "t"}
	for name, mut := range map[string]func(*Handler){
		"no key service":  func(h *Handler) { h.KeyService = "" },
		"bad key service": func(h *Handler) { h.KeyService = "127.0.0.1:8700" },
		"bad app":         func(h *Handler) { h.App = "one" },
		"no token":        func(h *Handler) { h.VerifierToken = "" },
		"bad header":      func(h *Handler) { h.Header = "X Key" },
		"negative ttl":    func(h *Handler) { h.CacheTTL = -1 },
		"verify cap -2":   func(h *Handler) { h.MaxVerifyCalls = -2 },
		"verify cap huge": func(h *Handler) { h.MaxVerifyCalls = 1 << 20 },
	} {
		h := ok
		mut(&h)
		if h.validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTakeKey(t *testing.T) {
	const k = "cak_x"
	tests := []struct {
		name   string
		in     http.Header
		want   string
		remain http.Header
	}{
		{"custom header", http.Header{"X-Api-Key": {" " + k + " "}}, k, http.Header{}},
		{"bearer", http.Header{"Authorization": {"Bearer " + k}}, k, http.Header{}},
		{"both: second copy dropped", http.Header{"X-Api-Key": {k}, "Authorization": {"Bearer " + k}}, k, http.Header{}},
		{"app token kept", http.Header{"X-Api-Key": {k}, "Authorization": {"Bearer jwt"}}, k, http.Header{"Authorization": {"Bearer jwt"}}},
		{"basic ignored", http.Header{"Authorization": {"Basic abc"}}, "", http.Header{"Authorization": {"Basic abc"}}},
		{"bare bearer", http.Header{"Authorization": {"Bearer "}}, "", http.Header{"Authorization": {"Bearer "}}},
	}
	for _, tc := range tests {
		got := takeKey(tc.in, "X-Api-Key")
		if got != tc.want || len(tc.in) != len(tc.remain) || tc.in.Get("Authorization") != tc.remain.Get("Authorization") {
			t.Errorf("%s: got %q, left %v; want %q, %v", tc.name, got, tc.in, tc.want, tc.remain)
		}
	}
}
