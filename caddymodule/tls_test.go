package caddymodule

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// provisionOnly provisions h without waiting for its feed, which never comes
// up when the key service cannot be reached.
func provisionOnly(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		return err
	}
	t.Cleanup(func() { h.Cleanup() })
	return nil
}

// serveErr runs one request and returns the handler's error.
func serveErr(h *Handler, key string) error {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", key)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	return h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
}

func TestKeyServiceTLS(t *testing.T) {
	ca := verifytest.NewCA(t, "appkeys test CA")
	srv := verifytest.NewUnstarted(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1", "keys.internal")}}
	srv.StartTLS()
	const app = "app_tls"
	key := srv.AddKey(t, "key_tls", app)
	caFile := ca.WriteFile(t)

	t.Run("right CA", func(t *testing.T) {
		h := provision(t, &Handler{KeyService: srv.URL, App: app, VerifierToken: srv.Token, CAFile: caFile, TLSServerName: "keys.internal"})
		if err := serveErr(h, key); err != nil {
			t.Fatalf("valid key over TLS: %v", err)
		}
	})
	t.Run("wrong CA", func(t *testing.T) {
		other := verifytest.NewCA(t, "someone else").WriteFile(t)
		h := &Handler{KeyService: srv.URL, App: app, VerifierToken: srv.Token, CAFile: other}
		if err := provisionOnly(t, h); err != nil {
			t.Fatal(err)
		}
		err := serveErr(h, key)
		herr, ok := err.(caddyhttp.HandlerError)
		if !ok || herr.StatusCode != 503 || !strings.Contains(herr.Error(), "tls: failed to verify certificate") ||
			!strings.Contains(herr.Error(), "certificate signed by unknown authority") {
			t.Fatalf("wrong CA: %v; want 503 saying the certificate did not verify", err)
		}
		if strings.Contains(herr.Error(), key) {
			t.Fatal("the error text carries the key")
		}
		if srv.VerifyCalls.Load() != 1 {
			t.Fatal("the key reached a server whose certificate did not verify")
		}
	})
	t.Run("config errors", func(t *testing.T) {
		noPEM := filepath.Join(t.TempDir(), "empty.pem")
		os.WriteFile(noPEM, []byte("not a certificate"), 0o600)
		for name, tc := range map[string]struct {
			h    Handler
			want string
		}{
			"http with ca_file": {Handler{KeyService: "http://127.0.0.1:1", CAFile: caFile}, "need an https:// key_service"},
			"missing ca_file":   {Handler{KeyService: srv.URL, CAFile: filepath.Join(t.TempDir(), "nope.pem")}, "ca_file"},
			"ca_file not PEM":   {Handler{KeyService: srv.URL, CAFile: noPEM}, "no PEM certificate"},
		} {
			h := tc.h
			h.App, h.VerifierToken = app, srv.Token
			if err := provisionOnly(t, &h); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v; want %q", name, err, tc.want)
			}
		}
	})
}
