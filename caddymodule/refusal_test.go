package caddymodule

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// TestServeHTTPChecksTheVerdict puts the handler in front of a key service
// that lies: it calls keys valid for another app, past their expiry, or
// with no expiry at all. The sidecar checks each valid answer against its
// own app and clock: every such request gets 401, and since the answer is
// not cached, the next request with the key asks again.
func TestServeHTTPChecksTheVerdict(t *testing.T) {
	ks := verifytest.New(t)
	app := uniqueApp("app_lied_to")
	h := provision(t, &Handler{KeyService: ks.URL, App: app, VerifierToken: ks.Token,
		FailedAttempts: &FailedAttempts{Off: true}})
	valid := func(appID string, expires any) map[string]any {
		a := map[string]any{"valid": true, "code": "VALID", "key_id": "key_lie", "key_name": "lie", "app_id": appID}
		if expires != nil {
			a["expires_at"] = expires
		}
		return a
	}
	for _, tc := range []struct {
		name   string
		answer map[string]any
	}{
		{"another app", valid("app_someone_else", "2099-01-01T00:00:00Z")},
		{"expired a minute ago", valid(app, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))},
		{"no expiry", valid(app, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := ks.AddAnswer(t, tc.answer)
			for i := 1; i <= 2; i++ {
				before := ks.VerifyCalls.Load()
				r := httptest.NewRequest("GET", "/", nil)
				r.Header.Set("X-API-Key", key)
				status, answer, _, _ := serve(t, h, r)
				if status != 401 || answer.Get("WWW-Authenticate") != challengeBadToken {
					t.Fatalf("request %d: %d %v; want 401 invalid_token", i, status, answer)
				}
				if ks.VerifyCalls.Load() != before+1 {
					t.Fatalf("request %d made no verify call: the refused answer was cached", i)
				}
			}
		})
	}
}
