// Package verifytest is a stand-in key service for tests of the sidecar. It
// answers POST /v1/verify from a table of keys (whose answers may be lies a
// real key service never tells) and GET /v1/events with a quiet feed, and
// can be switched into the faults a real key service (or the network in
// front of it) shows: refused connections, a black hole, slow answers, 5xx,
// truncated, oversized or misshapen JSON, a redirect, or flapping; or into
// the 429 the key service answers unknown keys once an app's budget of
// failed verifies is spent. It also makes a throwaway certificate authority for
// TLS tests.
package verifytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
)

// Fault is a way for the key service to fail. Only verify calls fail; the
// events feed stays quiet (except under Refuse, which takes the whole
// service away).
type Fault string

// The faults. Each name is also a readable subtest name.
const (
	Healthy   Fault = "healthy"
	Refuse    Fault = "refuse"     // the listener is closed: connections are refused. Cannot be undone.
	BlackHole Fault = "black_hole" // accepts, reads the request, never answers
	Slow      Fault = "slow"       // answers correctly, after Server.Delay
	HTTP500   Fault = "http_500"
	HTTP502   Fault = "http_502"
	HTTP503   Fault = "http_503"
	// HTTP429 is the key service with the app's budget of failed verifies
	// spent: keys it knows are answered as ever, unknown ones get 429 with
	// Retry-After: 7. It is a refusal, not a failure, so it is not in
	// Faults.
	HTTP429   Fault = "http_429"
	Truncated Fault = "truncated_json"
	Oversized Fault = "oversized_json" // a 200 with a 2 MiB body that starts like a valid answer
	Schema    Fault = "wrong_schema"   // a 200 with JSON of another shape
	Redirect  Fault = "redirect"       // a 307 to a place that would say yes to anything
	Flap      Fault = "flap"           // every other verify call answers 503
	// Held is a key service slow on purpose for as long as a test wants:
	// each verify call waits until Release (or until its client gives
	// up), then answers correctly. It is no failure, so it is not in
	// Faults.
	Held Fault = "held"
)

// Faults lists every way the key service can fail: every fault but
// Healthy and HTTP429.
var Faults = []Fault{Refuse, BlackHole, Slow, HTTP500, HTTP502, HTTP503, Truncated, Oversized, Schema, Redirect, Flap}

// Server is the stand-in key service.
type Server struct {
	*httptest.Server
	// Token is the verifier token it expects.
	Token string
	// Delay is how long a Slow answer takes (default 1s).
	Delay time.Duration

	mu       sync.Mutex
	keys     map[string]map[string]any
	fault    atomic.Value // Fault
	quit     chan struct{}
	closed   sync.Once
	released chan struct{} // closed by Release
	release  sync.Once

	// VerifyCalls counts verify calls that reached the server.
	VerifyCalls atomic.Int64
	// TrapCalls counts calls that followed the Redirect fault; it must stay 0.
	TrapCalls atomic.Int64
	flaps     atomic.Int64
}

// New starts a plain-HTTP server on 127.0.0.1, closed when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := NewUnstarted(tb)
	s.Start()
	return s
}

// NewUnstarted returns a server to be started with Start or StartTLS (after
// setting s.TLS), closed when the test ends.
func NewUnstarted(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{Token: "vt_fault_test", Delay: time.Second, keys: map[string]map[string]any{}, quit: make(chan struct{}),
		released: make(chan struct{})}
	s.fault.Store(Healthy)
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// Close releases every request held by BlackHole or the feed, then closes
// the server.
func (s *Server) Close() {
	s.closed.Do(func() {
		close(s.quit)
		s.Server.Close()
	})
}

// SetFault switches the server to f.
func (s *Server) SetFault(f Fault) {
	s.fault.Store(f)
	if f == Refuse {
		s.Listener.Close()
		s.CloseClientConnections()
	}
}

// Release lets every verify call held by Held answer, now and later.
func (s *Server) Release() {
	s.release.Do(func() { close(s.released) })
}

// AddKey returns a new key the server calls valid for app.
func (s *Server) AddKey(tb testing.TB, id, app string) string {
	tb.Helper()
	return s.AddKeyWithCode(tb, id, app, "VALID")
}

// AddKeyWithCode returns a new key the server answers code for (VALID,
// REVOKED, ORPHANED, ...), named "name of " + id.
func (s *Server) AddKeyWithCode(tb testing.TB, id, app, code string) string {
	tb.Helper()
	return s.AddAnswer(tb, map[string]any{"valid": code == "VALID", "code": code, "key_id": id, "key_name": "name of " + id,
		"app_id": app, "expires_at": "2099-01-01T00:00:00Z"})
}

// AddAnswer returns a new key the server answers with answer exactly as
// given: the key service that lies, such as one that calls a key valid
// for another app, past its expiry, or without one.
func (s *Server) AddAnswer(tb testing.TB, answer map[string]any) string {
	tb.Helper()
	k, err := apikey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	s.mu.Lock()
	s.keys[k] = answer
	s.mu.Unlock()
	return k
}

// hold waits until the client gives up or the server closes.
func (s *Server) hold(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.quit:
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/trap/v1/verify" {
		s.TrapCalls.Add(1)
		fmt.Fprint(w, `{"valid":true,"code":"VALID","key_id":"key_trap","app_id":"app_trap"}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"code":"unauthorized","message":"bad verifier token"}}`)
		return
	}
	switch r.URL.Path {
	case "/v1/events":
		if r.URL.Query().Get("after") == "" {
			fmt.Fprint(w, `{"events":[],"next":1}`)
			return
		}
		s.hold(r) // nothing ever happens in this service
		fmt.Fprint(w, `{"events":[],"next":1}`)
	case "/v1/verify":
		s.VerifyCalls.Add(1)
		s.verify(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	fault := s.fault.Load().(Fault)
	if fault == Flap && s.flaps.Add(1)%2 == 0 {
		fault = HTTP503
	}
	switch fault {
	case BlackHole:
		s.hold(r)
		return
	case Held:
		select {
		case <-s.released:
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		}
	case Slow:
		t := time.NewTimer(s.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		}
	case HTTP500, HTTP502, HTTP503:
		code := map[Fault]int{HTTP500: 500, HTTP502: 502, HTTP503: 503}[fault]
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":"unavailable","message":"fault %s"}}`, fault)
		return
	case Truncated:
		fmt.Fprint(w, `{"valid":true,"code":"VALID","key_id":"key_`)
		return
	case Oversized:
		fmt.Fprint(w, `{"valid":true,"code":"VALID","key_id":"key_big","app_id":"app_big","pad":"`)
		w.Write([]byte(strings.Repeat("a", 2<<20)))
		fmt.Fprint(w, `"}`)
		return
	case Schema:
		fmt.Fprint(w, `{"result":{"ok":true,"key":{"id":"key_x"}}}`)
		return
	case Redirect:
		http.Redirect(w, r, s.URL+"/trap/v1/verify", http.StatusTemporaryRedirect)
		return
	}
	var req struct{ Key string }
	json.Unmarshal(body, &req)
	s.mu.Lock()
	ans, ok := s.keys[req.Key]
	s.mu.Unlock()
	if !ok && fault == HTTP429 {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"code":"rate_limited","message":"too many failed verifications for this app; slow down"}}`)
		return
	}
	if !ok {
		ans = map[string]any{"valid": false, "code": "NOT_FOUND"}
	}
	json.NewEncoder(w).Encode(ans)
}

// StatusLabel is the code label appkey_auth_keyservice_requests_total
// gives the first verify call under f ("error": no answer arrived;
// "invalid": a 200 that was no answer).
func StatusLabel(f Fault) string {
	switch f {
	case Refuse, BlackHole, Slow:
		return "error"
	case HTTP500:
		return "500"
	case HTTP502:
		return "502"
	case HTTP503, Flap:
		return "503"
	case HTTP429:
		return "429"
	case Truncated, Oversized, Schema:
		return "invalid"
	case Redirect:
		return "307"
	}
	return "200"
}
