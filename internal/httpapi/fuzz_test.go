package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/httpapi"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/store"
)

// handlerWorld is the API handler on a real SQLite store, without a
// listener: fast enough for fuzzing.
type handlerWorld struct {
	h          http.Handler
	adminToken string
	ownerToken string
	appID      string
	verifier   string
	validKey   string
}

func newHandlerWorld(f *testing.F) *handlerWorld {
	f.Helper()
	c := context.Background()
	st, err := store.Open(c, filepath.Join(f.TempDir(), "appkeys.db"))
	must(f, err)
	f.Cleanup(func() { st.Close() })
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	svc, err := keyservice.New(keyservice.Config{Store: st, MasterKey: master})
	must(f, err)
	admin, owner, _, err := svc.Bootstrap(c, "", "", func(string, string) error { return nil })
	must(f, err)
	hw := &handlerWorld{h: httpapi.New(svc, httpapi.Options{}), adminToken: admin, ownerToken: owner}

	rec := hw.post("/v1/apps", owner, "application/json", []byte(`{"name":"fuzz","kind":"cloud_function"}`))
	var m map[string]any
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
		f.Fatalf("create app: %d %s", rec.Code, rec.Body)
	}
	hw.appID, _ = m["id"].(string)
	hw.verifier, _ = m["verifier_token"].(string)
	body, _ := json.Marshal(map[string]string{"name": "valid", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	rec = hw.post("/v1/apps/"+hw.appID+"/keys", owner, "application/json", body)
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
		f.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	hw.validKey, _ = m["key"].(string)
	return hw
}

func (hw *handlerWorld) post(path, token, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	hw.h.ServeHTTP(rec, req)
	return rec
}

// checkAnswer fails on a 5xx, and on a 4xx that is not the API's JSON error.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, body []byte) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		checkErrorBody(t, string(body), rec.Header().Get("Content-Type"), rec.Body.Bytes(), "")
	}
}

func FuzzCreateKeyRequest(f *testing.F) {
	hw := newHandlerWorld(f)
	soon := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for _, seed := range []string{
		`{"name":"k","expires_at":"` + soon + `"}`,
		`{"name":"k2","expires_at":"` + soon + `","save_as_secret":"S1"}`,
		`{"name":"k","expires_at":"2000-01-01T00:00:00Z"}`,
		`{"name":"k","expires_at":"9999-12-31T23:59:59Z"}`,
		`{"name":"k","expires_at":"2027-01-31"}`,
		`{"name":"","expires_at":null}`,
		`{"name":"k","expires_at":"` + soon + `"} {}`,
		`{"name":1}`, `{"name":"k","bogus":true}`, `[]`, `null`, `""`, ``, `{`, `{"name":"\u0000"}`,
		`{"name":"k","expires_at":"` + soon + `","save_as_secret":"../x"}`,
		`{"expires_at":"2027-02-30T00:00:00Z","name":"k"}`,
		`{"expires_at":"` + soon + `","name":"` + strings.Repeat("x", 101) + `"}`,
	} {
		f.Add([]byte(seed), "application/json")
	}
	f.Add([]byte(`{"name":"k"}`), "text/plain")
	f.Add([]byte(`{"name":"k"}`), "")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		rec := hw.post("/v1/apps/"+hw.appID+"/keys", hw.ownerToken, contentType, body)
		checkAnswer(t, rec, body)
		if rec.Code == http.StatusCreated {
			var k map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &k); err != nil {
				t.Fatalf("201 with %q", rec.Body)
			}
			plain, hasKey := k["key"].(string)
			_, hasSecret := k["secret_name"].(string)
			if hasKey == hasSecret || (hasKey && apikey.Parse(plain) != nil) || k["state"] != "active" {
				t.Fatalf("body %q created %s", body, rec.Body)
			}
		}
	})
}

func FuzzVerifyRequest(f *testing.F) {
	hw := newHandlerWorld(f)
	other, _ := apikey.Generate()
	for _, seed := range []string{
		`{"key":"` + hw.validKey + `"}`, `{"key":"` + other + `"}`, `{"key":""}`, `{"key":"cak_"}`,
		`{"key":"` + hw.validKey + `x"}`, `{"key":"` + strings.ToUpper(hw.validKey) + `"}`,
		`{"key":1}`, `{"key":null}`, `{}`, `{"key":"a","key":"b"}`, `{"KEY":"x"}`, `{"key":"x","more":1}`,
		`[]`, `null`, ``, `{"key":"` + hw.validKey + `"}garbage`, `{"key":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	codes := map[string]bool{"VALID": true, "MALFORMED": true, "NOT_FOUND": true, "EXPIRED": true, "REVOKED": true, "ORPHANED": true, "WRONG_APP": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := hw.post("/v1/verify", hw.verifier, "application/json", body)
		checkAnswer(t, rec, body)
		if rec.Code == http.StatusOK {
			var v struct {
				Valid *bool
				Code  string
				KeyID string `json:"key_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Valid == nil || !codes[v.Code] || *v.Valid != (v.Code == "VALID") {
				t.Fatalf("body %q: verify answered %s", body, rec.Body)
			}
			if v.Valid != nil && *v.Valid {
				var sent struct{ Key string }
				if json.Unmarshal(body, &sent) != nil || sent.Key != hw.validKey {
					t.Fatalf("body %q was VALID", body)
				}
			}
		} else if rec.Code != http.StatusTooManyRequests && rec.Code >= 300 && rec.Code != 400 && rec.Code != 413 {
			t.Fatalf("body %q: status %d %s", body, rec.Code, rec.Body)
		}
	})
}

// FuzzManagementRequest sends arbitrary bodies to the other create calls:
// organizations, users, apps and secrets. None may answer 5xx or a 4xx that
// is not the API's JSON error, and what one creates must be what was asked:
// the names, emails, kind and role it answers, and a secret's value read
// back.
func FuzzManagementRequest(f *testing.F) {
	hw := newHandlerWorld(f)
	calls := []struct{ path, token string }{
		{"/v1/orgs", hw.adminToken},
		{"/v1/users", hw.ownerToken},
		{"/v1/apps", hw.ownerToken},
		{"/v1/secrets", hw.ownerToken},
	}
	for _, seed := range []struct {
		call uint8
		body string
	}{
		{0, `{"name":"Acme","owner_email":"o@acme.test"}`}, {0, `{"name":"","owner_email":"not-an-email"}`},
		{0, `{"name":"Acme","owner_email":"o@acme.test","role":"owner"}`},
		{1, `{"email":"m@acme.test","role":"member"}`}, {1, `{"email":"a@acme.test","role":"aura_owner"}`},
		{1, `{"email":"m@acme.test","role":"admin"}`}, {1, `{"email":"m@@","role":"member"}`}, {1, `{"email":"M@ACME.TEST ","role":"owner"}`},
		{2, `{"name":"billing","kind":"cloud_function"}`}, {2, `{"name":"dash","kind":"dashboard_app"}`},
		{2, `{"name":"x","kind":"vm"}`}, {2, `{"name":"` + strings.Repeat("n", 200) + `","kind":"cloud_function"}`},
		{3, `{"name":"DB_PASSWORD","value":"hunter2"}`}, {3, `{"name":"a/b","value":"x"}`}, {3, `{"name":"S","value":""}`},
		{3, `{"name":"S","value":"` + strings.Repeat("v", 70000) + `"}`},
		{0, `[]`}, {1, `null`}, {2, ``}, {3, `{"name":"S","value":"x"} {}`},
	} {
		f.Add(seed.call, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		call := calls[int(which)%len(calls)]
		rec := hw.post(call.path, call.token, "application/json", body)
		checkAnswer(t, rec, body)
		if rec.Code == http.StatusCreated {
			// Field names match as encoding/json matches them: exactly,
			// else case-insensitively.
			var sent struct {
				Name, Kind, Role, Email, Value string
				OwnerEmail                     string `json:"owner_email"`
			}
			var got struct {
				Name, Kind, Role, Email, Value string
				VerifierToken                  string `json:"verifier_token"`
				Owner                          struct{ Email string }
			}
			if json.Unmarshal(body, &sent) != nil || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
				t.Fatalf("%s %q: 201 with %q", call.path, body, rec.Body)
			}
			// Names are trimmed, emails trimmed and lowercased.
			ok := true
			switch call.path {
			case "/v1/orgs":
				ok = got.Name == strings.TrimSpace(sent.Name) && got.Owner.Email == strings.ToLower(strings.TrimSpace(sent.OwnerEmail))
			case "/v1/users":
				ok = got.Role == sent.Role && got.Email == strings.ToLower(strings.TrimSpace(sent.Email))
			case "/v1/apps":
				ok = got.Name == strings.TrimSpace(sent.Name) && got.Kind == sent.Kind && got.VerifierToken != ""
			case "/v1/secrets":
				// The stored value reads back exactly as sent.
				req := httptest.NewRequest("GET", "/v1/secrets/"+url.PathEscape(sent.Name), nil)
				req.Header.Set("Authorization", "Bearer "+hw.ownerToken)
				read := httptest.NewRecorder()
				hw.h.ServeHTTP(read, req)
				var back struct{ Name, Value string }
				ok = got.Name == sent.Name && read.Code == http.StatusOK && json.Unmarshal(read.Body.Bytes(), &back) == nil && back.Value == sent.Value
			}
			if !ok {
				t.Fatalf("%s %q created %s", call.path, body, rec.Body)
			}
		} else if rec.Code < 400 {
			t.Fatalf("%s %q: status %d %s", call.path, body, rec.Code, rec.Body)
		}
	})
}
