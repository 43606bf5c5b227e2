package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/keyserver"
)

func TestServeFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantErr  string
		rate     float64
		burst    int
		lifetime time.Duration
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
		})
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
