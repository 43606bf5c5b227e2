package caddymodule

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/appkeys/appkeys/e2e"
	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// A request queued behind max_verify_calls past its own deadline gets 503
// with Retry-After (never 401, never a hang until the shared call's
// timeout), leaves nothing queued, and its key is never asked: the key
// service, slow on purpose, sees only the call that held the slot. Its
// client's failed attempt is given back (a deadline is not the client's
// doing).
func TestQueuedPastDeadlineAnswers503(t *testing.T) {
	ks := verifytest.New(t)
	ks.SetFault(verifytest.Held)
	defer ks.Release()
	app := uniqueApp("app_queue")
	busy, queued := ks.AddKey(t, "key_busy", app), ks.AddKey(t, "key_queued", app)
	h := provision(t, &Handler{KeyService: ks.URL, App: app, VerifierToken: ks.Token,
		MaxVerifyCalls: 1, Timeout: caddy.Duration(time.Minute), FailedAttempts: &FailedAttempts{Limit: 1, Window: caddy.Duration(time.Hour)}})

	first := make(chan int, 1)
	go func() {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-API-Key", busy)
		status, _, _, _ := serve(t, h, r)
		first <- status
	}()
	for deadline := time.Now().Add(10 * time.Second); ks.VerifyCalls.Load() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first call never reached the key service")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
	r.RemoteAddr = "192.0.2.9:1234"
	r.Header.Set("X-API-Key", queued)
	status, answer, _, _ := serve(t, h, r)
	if status != http.StatusServiceUnavailable || answer.Get("Retry-After") == "" || answer.Get("WWW-Authenticate") != "" {
		t.Fatalf("queued past its deadline: %d %v; want 503 with Retry-After and no challenge", status, answer)
	}
	if w := h.engine.Stats().QueueWaiting; w != 0 {
		t.Fatalf("queue_waiting %d after the request gave up; want 0", w)
	}
	if ok, _ := h.throttle.Reserve(netip.MustParseAddr("192.0.2.9")); !ok {
		t.Fatal("the deadline cost the client its one failed attempt")
	}
	for name, got := range map[string]float64{
		"queued_total":         testutil.ToFloat64(queuedTotal.WithLabelValues(app)),
		"unavailable by queue": testutil.ToFloat64(requestsTotal.WithLabelValues(app, "unavailable", "queue")),
	} {
		if got != 1 {
			t.Errorf("%s = %v; want 1", name, got)
		}
	}

	ks.Release()
	if s := <-first; s != http.StatusOK {
		t.Fatalf("the request holding the slot: %d", s)
	}
	h.engine.Close() // every call the engine started has ended
	if n := ks.VerifyCalls.Load(); n != 1 {
		t.Fatalf("%d verify calls; the abandoned key was asked after its request gave up", n)
	}
}

// TestE2EQueueClientGivesUp runs a real Caddy with max_verify_calls 1 in
// front of a key service that holds every verify call. A client whose key
// queues behind the one call in flight gives up (closes its side of the
// connection): it is answered 503 with Retry-After, and the admin
// endpoint's /metrics shows nothing queued while the slot is still held,
// the queue counted once, and the unavailable request by its reason.
func TestE2EQueueClientGivesUp(t *testing.T) {
	ks := verifytest.New(t)
	ks.SetFault(verifytest.Held)
	defer ks.Release()
	app := uniqueApp("app_e2e_queue")
	busy, queued := ks.AddKey(t, "key_busy", app), ks.AddKey(t, "key_queued", app)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer upstream.Close()

	port := e2e.TestPort(t)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: e2eAdminPort})
	tester.InitServer(e2e.GlobalOptions(fmt.Sprintf("localhost:%d", e2eAdminPort))+fmt.Sprintf(`
http://127.0.0.1:%d {
	appkey_auth {
		key_service %s
		app %s
		verifier_token %s
		timeout 1m
		max_verify_calls 1
	}
	reverse_proxy %s
}`, port, ks.URL, app, ks.Token, strings.TrimPrefix(upstream.URL, "http://")), "caddyfile")

	first := make(chan int, 1)
	go func() {
		resp, err := e2e.Get(tester.Client, port, busy)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	for deadline := time.Now().Add(10 * time.Second); ks.VerifyCalls.Load() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first call never reached the key service")
		}
	}

	// The client sends its request and gives up: it closes its half of
	// the connection, which cancels the request in Caddy, and still reads
	// what Caddy answers.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\n\r\n", queued)
	metrics := func() string {
		t.Helper()
		resp, err := tester.Client.Get(fmt.Sprintf("http://localhost:%d/metrics", e2eAdminPort))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waiting := `appkey_auth_keyservice_queue_waiting{app="` + app + `"} `
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(metrics(), waiting+"1"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the request never queued:\n%s", grepLines(metrics(), "appkey_auth_"))
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the client that gave up: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("client that gave up while queued: %d %v; want 503 with Retry-After", resp.StatusCode, resp.Header)
	}

	// The slot is still held by the first call: nothing may wait for it.
	body := metrics()
	for _, want := range []string{
		waiting + "0",
		`appkey_auth_keyservice_queued_total{app="` + app + `"} 1`,
		`appkey_auth_requests_total{app="` + app + `",reason="queue",result="unavailable"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(body, "appkey_auth_"))
	}

	ks.Release()
	if s := <-first; s != http.StatusOK {
		t.Fatalf("the request holding the slot: %d", s)
	}
	// The key that queued is asked afresh and gets in.
	again, err := e2e.Get(tester.Client, port, queued)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusOK {
		t.Fatalf("the queued key asked again: %d", again.StatusCode)
	}
	if n := ks.VerifyCalls.Load(); n != 2 {
		t.Fatalf("%d verify calls; want 2 (the first key, the queued key asked again)", n)
	}
}
