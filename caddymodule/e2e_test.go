package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/appkeys/appkeys/e2e"
	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// e2eAdminPort is this package's own Caddy admin port: test packages run as
// concurrent processes and must not share one.
const e2eAdminPort = 2931

// TestE2ECaddy runs a real Caddy with appkey_auth, from a Caddyfile with a
// custom key header and an access log, in front of a real upstream.
func TestE2ECaddy(t *testing.T) {
	ks := verifytest.New(t)
	const app = "app_e2e"
	valid := ks.AddKeyWithCode(t, "key_e2e", app, "VALID")
	revoked := ks.AddKeyWithCode(t, "key_rev", app, "REVOKED")

	var mu sync.Mutex
	var seen []http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		fmt.Fprintf(w, "hello %s", r.Header.Get(HeaderKeyID))
	}))
	defer upstream.Close()

	logFile := filepath.Join(t.TempDir(), "access.log")
	port := e2e.TestPort(t)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: e2eAdminPort})
	tester.InitServer(e2e.GlobalOptions(fmt.Sprintf("localhost:%d", e2eAdminPort))+fmt.Sprintf(`
http://127.0.0.1:%d {
	appkey_auth {
		key_service %s
		app %s
		verifier_token %s
		header X-Secret-Key
	}
	log {
		output file %s
		format filter {
			request>headers>X-Secret-Key delete
		}
	}
	reverse_proxy %s
}`, port, ks.URL, app, ks.Token, logFile, strings.TrimPrefix(upstream.URL, "http://")), "caddyfile")

	base := fmt.Sprintf("http://127.0.0.1:%d/", port)
	do := func(hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", base, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, _ := do(nil)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="appkeys"` {
		t.Fatalf("no key: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for _, k := range []string{revoked, "cak_malformed", mustKey(t)} {
		resp, _ = do(map[string]string{"X-Secret-Key": k})
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="appkeys", error="invalid_token"` {
			t.Fatalf("bad key: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp, body := do(map[string]string{"X-Secret-Key": valid, "X-Appkeys-Key-Id": "key_admin"})
	if resp.StatusCode != 200 || body != "hello key_e2e" {
		t.Fatalf("valid key: %d %q", resp.StatusCode, body)
	}
	resp, body = do(map[string]string{"Authorization": "Bearer " + valid})
	if resp.StatusCode != 200 || body != "hello key_e2e" {
		t.Fatalf("valid bearer: %d %q", resp.StatusCode, body)
	}

	mu.Lock()
	for _, h := range seen {
		for name, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, valid) {
					t.Errorf("upstream saw the key in %s", name)
				}
			}
		}
		if got := h.Values(HeaderKeyID); len(got) != 1 || got[0] != "key_e2e" || h.Get(HeaderAppID) != app {
			t.Errorf("upstream identity headers %v", h)
		}
	}
	mu.Unlock()

	// The access log is written after each answer; load an empty config so
	// the log file is flushed and closed before it is read.
	tester.InitServer(fmt.Sprintf("{\n\tadmin localhost:%d\n\tlog {\n\t\tlevel WARN\n\t}\n}\n", e2eAdminPort), "caddyfile")
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logged), "\n"); n < 6 {
		t.Fatalf("access log has %d lines; want one per request:\n%s", n, logged)
	}
	for _, k := range []string{valid, revoked} {
		if strings.Contains(string(logged), k) {
			t.Fatalf("the access log contains a key:\n%s", logged)
		}
	}
	if !strings.Contains(string(logged), `"user_id":"key_e2e"`) {
		t.Fatalf("the access log lacks user_id from http.auth.user.id:\n%s", logged)
	}
}
