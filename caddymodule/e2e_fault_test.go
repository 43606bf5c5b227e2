package caddymodule

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/appkeys/appkeys/e2e"
	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// TestE2EFaultsThrottleTLS runs real Caddy from a Caddyfile with two sites:
// one in front of a key service that is switched through faults, one in
// front of a key service reached over TLS with a private CA and with a
// tight failed-attempts throttle. It checks what clients see and what the
// admin endpoint's /metrics reports.
func TestE2EFaultsThrottleTLS(t *testing.T) {
	faulty := verifytest.New(t)
	ca := verifytest.NewCA(t, "appkeys e2e CA")
	secure := verifytest.NewUnstarted(t)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}
	secure.StartTLS()
	appF, appT := uniqueApp("app_e2e_faults"), uniqueApp("app_e2e_throttle")
	knownF := faulty.AddKey(t, "key_f", appF)
	knownT := secure.AddKey(t, "key_t", appT)

	var mu sync.Mutex
	var seen []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, fmt.Sprint(r.Header))
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	defer upstream.Close()

	portF, portT := e2e.TestPort(t), e2e.TestPort(t)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: e2eAdminPort})
	tester.InitServer(e2e.GlobalOptions(fmt.Sprintf("localhost:%d", e2eAdminPort))+fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	appkey_auth {
		key_service %[2]s
		app %[3]s
		verifier_token %[4]s
		cache_ttl 1ms
		stale_if_error 1h
		timeout 300ms
	}
	reverse_proxy %[5]s
}
http://127.0.0.1:%[6]d {
	appkey_auth {
		key_service %[7]s
		ca_file %[8]s
		app %[9]s
		verifier_token %[4]s
		failed_attempts 3/1h
	}
	reverse_proxy %[5]s
}`, portF, faulty.URL, appF, faulty.Token, strings.TrimPrefix(upstream.URL, "http://"),
		portT, secure.URL, ca.WriteFile(t), appT), "caddyfile")

	get := func(port int, key string) *http.Response {
		t.Helper()
		resp, err := e2e.Get(tester.Client, port, key)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	expect := func(port int, key string, want int) *http.Response {
		t.Helper()
		resp := get(port, key)
		if resp.StatusCode != want {
			t.Fatalf("status %d; want %d", resp.StatusCode, want)
		}
		if want >= 429 && resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%d without Retry-After", want)
		}
		return resp
	}

	expect(portF, knownF, 200)
	for _, f := range []verifytest.Fault{verifytest.BlackHole, verifytest.HTTP503, verifytest.Truncated, verifytest.Redirect, verifytest.Refuse} {
		faulty.SetFault(f)
		expect(portF, knownF, 200)     // stale, within stale_if_error
		expect(portF, mustKey(t), 503) // never 401, never 200
	}

	// Over TLS with the private CA: the good key gets in; a guesser at the
	// same address is throttled after 3 bad keys, yet the good key, known
	// good, still gets in.
	expect(portT, knownT, 200)
	for range 3 {
		expect(portT, mustKey(t), 401)
	}
	expect(portT, mustKey(t), 429)
	expect(portT, knownT, 200)

	mu.Lock()
	for _, h := range seen {
		if strings.Contains(h, knownF) || strings.Contains(h, knownT) {
			t.Fatalf("upstream saw a key: %s", h)
		}
	}
	mu.Unlock()

	resp, err := tester.Client.Get(fmt.Sprintf("http://localhost:%d/metrics", e2eAdminPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		// Five failures in a row open the circuit breaker: the later faults
		// are answered without a call (and still by the rules above).
		`appkey_auth_keyservice_requests_total{app="` + appF + `",code="error"} 2`,
		`appkey_auth_keyservice_requests_total{app="` + appF + `",code="503"} 2`,
		`appkey_auth_stale_served_total{app="` + appF + `"} 5`,
		`appkey_auth_requests_total{app="` + appF + `",reason="keyservice",result="unavailable"} 5`,
		`appkey_auth_throttled_total{app="` + appT + `"} 1`,
		`appkey_auth_requests_total{app="` + appT + `",reason="failed_attempts",result="throttled"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(string(body), "appkey_auth_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
