package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/leaktest"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestOpenAPIDescribesLeakAnswers: the answers of the leak report and key
// lookup endpoints, and the keys lists' leaked filter, match openapi.yaml,
// errors included.
func TestOpenAPIDescribesLeakAnswers(t *testing.T) {
	d := load(t)
	gh := leaktest.NewSigner()
	keys := leaktest.NewKeyServer(gh)
	defer keys.Close()
	svc := servicetest.Start(t, servicetest.WithConfig(func(c *keyserver.Config) { c.LeakKeysURL = keys.URL; c.LeakAction = "notify" }))
	check := func(req *http.Request, want int) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, raw, want)
		}
		schema := responseSchema(t, d, req.Method, req.URL.RequestURI(), resp.StatusCode, resp.Header.Get("Content-Type"))
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: not JSON: %v", req.Method, req.URL.Path, err)
		}
		for _, problem := range checkSchema(d, schema, v) {
			t.Errorf("%s %s (%d): %s", req.Method, req.URL.Path, resp.StatusCode, problem)
		}
	}
	newReq := func(method, path, token string, body []byte, hdr ...string) *http.Request {
		req, _ := http.NewRequest(method, svc.URL+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return req
	}
	owner, err := client.New(svc.URL, svc.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	app, err := owner.CreateApp(t.Context(), client.CreateAppRequest{Name: "shop", Kind: client.KindCloudFunction})
	if err != nil {
		t.Fatal(err)
	}
	k, err := owner.CreateKey(t.Context(), app.ID, client.CreateKeyRequest{Name: "ci", ExpiresAt: time.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	body := leaktest.Body(k.PlainKey, "not-ours")
	signed := func(b []byte) []string {
		return []string{"Github-Public-Key-Identifier", gh.ID, "Github-Public-Key-Signature", gh.Sign(b)}
	}
	check(newReq("POST", "/v1/leaks/github", "", body, signed(body)...), 200)
	check(newReq("POST", "/v1/leaks/github", "", body), 401)
	check(newReq("POST", "/v1/leaks/github", "", []byte("{}"), signed([]byte("{}"))...), 400)
	check(newReq("POST", "/v1/leaks/github", "", bytes.Repeat([]byte(" "), 2<<20+1)), 413)
	check(newReq("GET", "/v1/keys?leaked=true", svc.OwnerToken, nil), 200)
	check(newReq("GET", "/v1/apps/"+app.ID+"/keys?leaked=false", svc.OwnerToken, nil), 200)
	check(newReq("GET", "/v1/keys?leaked=yes", svc.OwnerToken, nil), 400)
	lookup := func(key string) []byte { b, _ := json.Marshal(map[string]string{"key": key}); return b }
	check(newReq("POST", "/v1/keys/lookup", svc.OwnerToken, lookup(k.PlainKey)), 200)
	check(newReq("POST", "/v1/keys/lookup", svc.OwnerToken, lookup("cak_nope")), 422)
	if err := owner.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	check(newReq("POST", "/v1/keys/lookup", svc.OwnerToken, lookup(k.PlainKey)), 200) // revoked: revoked_at
	u, err := owner.CreateUser(t.Context(), client.CreateUserRequest{Email: "m@example.test", Role: client.RoleMember})
	if err != nil {
		t.Fatal(err)
	}
	check(newReq("POST", "/v1/keys/lookup", u.Token, lookup(k.PlainKey)), 403)
}

// checkSchema is check from the document's root.
func checkSchema(d doc, schema doc, v any) []string {
	if schema == nil {
		return []string{"no schema"}
	}
	return check(d, schema, v, "$")
}
