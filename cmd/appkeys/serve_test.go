package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

func TestServeFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantErr  string
		rate     float64
		burst    int
		lifetime time.Duration
		// The leak settings; the defaults (GitHub's URL, revoke) when
		// empty, and leakURL "-" for none.
		leakURL, leakFile, leakAction string
	}{
		{args: nil, rate: 50, burst: 500, lifetime: 365 * 24 * time.Hour},
		{args: []string{"--verify-failure-rate", "2.5", "--verify-failure-burst", "7", "--max-key-lifetime", "90d"}, rate: 2.5, burst: 7, lifetime: 90 * 24 * time.Hour},
		{args: []string{"--max-key-lifetime", "720h"}, rate: 50, burst: 500, lifetime: 720 * time.Hour},
		{args: []string{"--verify-failure-rate", "0"}, wantErr: "--verify-failure-rate"},
		{args: []string{"--verify-failure-rate", "NaN"}, wantErr: "--verify-failure-rate"},
		{args: []string{"--verify-failure-burst", "0"}, wantErr: "--verify-failure-burst"},
		{args: []string{"--max-key-lifetime", "0d"}, wantErr: "--max-key-lifetime"},
		{args: []string{"--max-key-lifetime", "forever"}, wantErr: "--max-key-lifetime"},
		{args: []string{"--log-format", "xml"}, wantErr: "--log-format"},
		{args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{args: []string{"--tls-cert", "c.pem"}, wantErr: "--tls-key"},
		{args: []string{"--public-url", "https://keys.example.com", "--trusted-proxies", "10.0.0.0/8,private_ranges", "--trusted-proxies", "192.0.2.7"}, rate: 50, burst: 500, lifetime: 365 * 24 * time.Hour},
		{args: []string{"--public-url", "keys.example.com"}, wantErr: "--public-url"},
		{args: []string{"--public-url", "ftp://keys.example.com"}, wantErr: "--public-url"},
		{args: []string{"--public-url", "https://"}, wantErr: "--public-url"},
		{args: []string{"--trusted-proxies", "10.0.0.0/33"}, wantErr: "--trusted-proxies"},
		{args: []string{"--trusted-proxies", "proxy.example.com"}, wantErr: "--trusted-proxies"},
		{args: []string{"--leak-action", "delete"}, wantErr: "--leak-action"},
		{args: []string{"--leak-keys-url", "ftp://keys.example.com"}, wantErr: "--leak-keys-url"},
		{args: []string{"--leak-keys-url", "https://keys.example.com/k", "--leak-keys-file", "k.json"}, wantErr: "not both"},
		{args: []string{"--leak-action", "notify", "--leak-keys-file", "k.json"}, rate: 50, burst: 500, lifetime: 365 * 24 * time.Hour,
			leakAction: "notify", leakFile: "k.json"},
		{args: []string{"--leak-keys-url", ""}, rate: 50, burst: 500, lifetime: 365 * 24 * time.Hour, leakURL: "-"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var f serveFlags
			cmd := &cobra.Command{}
			f.register(cmd, "127.0.0.1:0")
			f.registerServe(cmd)
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.config(io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.VerifyFailureRate != tt.rate || cfg.VerifyFailureBurst != tt.burst || cfg.MaxKeyLifetime != tt.lifetime {
				t.Errorf("rate %v, burst %d, lifetime %v; want %v, %d, %v", cfg.VerifyFailureRate, cfg.VerifyFailureBurst, cfg.MaxKeyLifetime, tt.rate, tt.burst, tt.lifetime)
			}
			wantURL, wantAction := tt.leakURL, tt.leakAction
			switch {
			case wantURL == "-" || tt.leakFile != "":
				wantURL = ""
			case wantURL == "":
				wantURL = "https://api.github.com/meta/public_keys/secret_scanning"
			}
			if wantAction == "" {
				wantAction = "revoke"
			}
			if cfg.LeakKeysURL != wantURL || cfg.LeakKeysFile != tt.leakFile || cfg.LeakAction != wantAction {
				t.Errorf("leak keys %q, file %q, action %q; want %q, %q, %q", cfg.LeakKeysURL, cfg.LeakKeysFile, cfg.LeakAction, wantURL, tt.leakFile, wantAction)
			}
		})
	}
}

// TestServeMetricsAddr: with --metrics-addr, `appkeys serve` serves
// /metrics on a listener of its own and nothing else there, and the API's
// listener (public, behind the load balancer) answers 404 for /metrics.
func TestServeMetricsAddr(t *testing.T) {
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	args := []string{"serve", "--addr", addr, "--metrics-addr", metricsAddr, "--data", t.TempDir(), "--log-level", "warn"}
	if os.Getenv(servicetest.EnvStore) == "postgres" {
		args = append(args, "--database", pgtest.NewDatabase(t))
	}
	for _, env := range []string{"APPKEYS_DATABASE_URL", "APPKEYS_MASTER_KEY", "APPKEYS_ADMIN_TOKEN", "APPKEYS_BOOTSTRAP_TOKEN"} {
		t.Setenv(env, "")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(io.Discard)
	stderr := &servicetest.LogBuffer{}
	root.SetErr(stderr)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready within 30s\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	get := func(url string) (int, string, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	if code, ct, body := get("http://" + metricsAddr + "/metrics"); code != http.StatusOK || !strings.HasPrefix(ct, "text/plain") ||
		!strings.Contains(body, "appkeys_http_requests_total") || !strings.Contains(body, `route="GET /readyz"`) {
		t.Fatalf("GET /metrics on --metrics-addr: %d %s\n%.300s", code, ct, body)
	}
	if code, ct, body := get("http://" + addr + "/metrics"); code != http.StatusNotFound || !strings.HasPrefix(ct, "application/json") || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("GET /metrics on --addr with --metrics-addr set: %d %s %s; want the API's 404", code, ct, body)
	}
	for _, path := range []string{"/", "/healthz", "/v1/me", "/metrics/x"} {
		if code, _, _ := get("http://" + metricsAddr + path); code != http.StatusNotFound {
			t.Errorf("GET %s on --metrics-addr: %d; want 404, only /metrics lives there", path, code)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve did not stop cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s")
	}
	if _, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
		t.Error("the metrics listener outlived serve")
	}
}

// --public-url and --trusted-proxies reach the console a real `serve`
// mounts: its cookies are Secure, __Host- ones when the public URL is
// https or a trusted proxy says X-Forwarded-Proto: https, and plain ones
// when an untrusted client says it.
func TestServeConsoleCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		secure bool
	}{
		{args: nil},
		{args: []string{"--public-url", "https://keys.example.com"}, secure: true},
		{args: []string{"--public-url", "http://127.0.0.1:8700"}},
		{args: []string{"--trusted-proxies", "127.0.0.1"}, secure: true}, // this test's client is the proxy
		{args: []string{"--trusted-proxies", "10.0.0.0/8"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var f serveFlags
			cmd := &cobra.Command{}
			f.register(cmd, "127.0.0.1:0")
			f.registerServe(cmd)
			if err := cmd.Flags().Parse(append([]string{"--data", t.TempDir()}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.config(io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := keyserver.Start(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close(context.Background())
			req, _ := http.NewRequest("GET", srv.URL+"/login", nil)
			req.Header.Set("X-Forwarded-Proto", "https")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			http.DefaultClient.CloseIdleConnections()
			var got *http.Cookie
			for _, c := range res.Cookies() {
				if strings.HasSuffix(c.Name, "appkeys_login") {
					got = c
				}
			}
			want := "appkeys_login"
			if tc.secure {
				want = "__Host-appkeys_login"
			}
			if res.StatusCode != http.StatusOK || got == nil || got.Name != want || got.Secure != tc.secure {
				t.Fatalf("GET /login = %d, Set-Cookie %q; want %s, Secure %v", res.StatusCode, res.Header.Values("Set-Cookie"), want, tc.secure)
			}
		})
	}
}
