package keyserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/verify"
	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// TestServeTLS: with a certificate of a private CA, the key service speaks
// HTTPS, and the sidecar's client verifies keys over it with that CA and
// refuses it without.
func TestServeTLS(t *testing.T) {
	ca := verifytest.NewCA(t, "appkeys test CA")
	_, pems := ca.IssuePEM(t, "127.0.0.1")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pems[0], 0o600)
	os.WriteFile(keyFile, pems[1], 0o600)

	srv, err := keyserver.Start(context.Background(), keyserver.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), MasterKey: masterKey(t), BootstrapToken: "aku_ownerTokenForTheTLSTest0123456789abcdefghijk",
		TLSCertFile: certFile, TLSKeyFile: keyFile, MetricsAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	if !strings.HasPrefix(srv.URL, "https://") || !strings.HasPrefix(srv.MetricsURL, "https://") {
		t.Fatalf("URL %s, metrics %s; want https:// for both", srv.URL, srv.MetricsURL)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer hc.CloseIdleConnections()
	// The metrics listener speaks TLS too: no plain-text side door.
	if resp, err := hc.Get(srv.MetricsURL + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics over TLS: %v", err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get("http" + strings.TrimPrefix(srv.MetricsURL, "https") + "/metrics"); err == nil && resp.StatusCode == 200 {
		resp.Body.Close()
		t.Fatal("the metrics listener answered plain HTTP")
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/apps", strings.NewReader(`{"name":"tls","kind":"cloud_function"}`))
	req.Header.Set("Authorization", "Bearer aku_ownerTokenForTheTLSTest0123456789abcdefghijk")
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		VerifierToken string `json:"verifier_token"`
	}
	json.NewDecoder(resp.Body).Decode(&app)
	resp.Body.Close()
	if resp.StatusCode != 201 || app.VerifierToken == "" {
		t.Fatalf("create app over TLS: %d", resp.StatusCode)
	}

	key, _ := apikey.Generate()
	for name, tc := range map[string]struct {
		cfg *tls.Config
		ok  bool
	}{"right CA": {&tls.Config{RootCAs: ca.Pool()}, true}, "wrong CA": {&tls.Config{RootCAs: verifytest.NewCA(t, "other").Pool()}, false}} {
		c, err := verify.NewClient(verify.ClientConfig{BaseURL: srv.URL, Token: app.VerifierToken, TLS: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Verify(context.Background(), key)
		c.CloseIdleConnections()
		var cve *tls.CertificateVerificationError
		if tc.ok && (err != nil || r.Code != verify.CodeNotFound) || !tc.ok && !errors.As(err, &cve) {
			t.Fatalf("%s: %+v, %v", name, r, err)
		}
	}
	if _, err := keyserver.Start(context.Background(), keyserver.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		MasterKey: masterKey(t), TLSCertFile: certFile, TLSKeyFile: certFile,
		Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("a certificate without its key: %v", err)
	}
}
