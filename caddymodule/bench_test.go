package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// BenchmarkServeHTTPCacheHit is the handler's own work on a request whose
// key is cached, up to the next handler: taking the key, dropping
// client-sent identity headers, the engine's lookup, the counters, the
// identity headers and the placeholders. One request is reused, its key
// header put back each time.
func BenchmarkServeHTTPCacheHit(b *testing.B) {
	ks := verifytest.New(b)
	const app = "app_bench"
	h := provision(b, &Handler{KeyService: ks.URL, App: app, VerifierToken: ks.Token})
	key := []string{ks.AddKeyWithCode(b, "key_bench", app, "VALID")}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	w := httptest.NewRecorder()
	keyHeader := http.CanonicalHeaderKey(DefaultHeader)
	serveOnce := func() {
		req.Header[keyHeader] = key
		if err := h.ServeHTTP(w, req, next); err != nil {
			b.Fatal(err)
		}
	}
	serveOnce() // the miss that caches the key
	if ks.VerifyCalls.Load() != 1 {
		b.Fatal("the key was not checked")
	}
	b.ReportAllocs()
	for b.Loop() {
		serveOnce()
	}
	if ks.VerifyCalls.Load() != 1 {
		b.Fatal("a request missed the cache")
	}
}
