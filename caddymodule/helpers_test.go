package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/appkeys/appkeys/internal/apikey"
)

// fakeKeyService speaks the key service's verify and events calls.
type fakeKeyService struct {
	*httptest.Server
	token   string
	mu      sync.Mutex
	keys    map[string]map[string]any
	calls   atomic.Int64
	failing atomic.Bool
}

func newFakeKeyService(t *testing.T) *fakeKeyService {
	t.Helper()
	f := &fakeKeyService{token: "vt_test", keys: map[string]map[string]any{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeKeyService) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+f.token {
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
		<-r.Context().Done() // nothing ever happens in this fake
	case "/v1/verify":
		f.calls.Add(1)
		if f.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"unavailable","message":"down"}}`)
			return
		}
		var req struct{ Key string }
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		ans, ok := f.keys[req.Key]
		f.mu.Unlock()
		if !ok {
			ans = map[string]any{"valid": false, "code": "NOT_FOUND"}
		}
		json.NewEncoder(w).Encode(ans)
	default:
		http.NotFound(w, r)
	}
}

// addKey returns a new key the fake answers for with code.
func (f *fakeKeyService) addKey(t *testing.T, id, app, code string) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.keys[k] = map[string]any{"valid": code == "VALID", "code": code, "key_id": id, "key_name": "name-" + id,
		"app_id": app, "expires_at": "2099-01-01T00:00:00Z"}
	f.mu.Unlock()
	return k
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func canonical(s string) string { return http.CanonicalHeaderKey(s) }
