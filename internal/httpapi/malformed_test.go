package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// Malformed input on every endpoint answers a clear 4xx in the documented
// error shape, never a 500, and writes nothing.
func TestMalformedInput(t *testing.T) {
	w := newWorld(t)
	keep := w.createKey(w.owner, w.appA.ID, "existing")
	_, err := w.owner.CreateSecret(ctx(t), client.CreateSecretRequest{Name: "EXISTING", Value: "v"})
	must(t, err)
	now := w.clock.Now().UTC()
	rfc := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	admin := w.svc.AdminToken
	huge := strings.Repeat("a", 200<<10)
	long := strings.Repeat("n", 101)

	before := snapshot(w)

	type endpoint struct {
		path, token string
		valid       map[string]any // a body the endpoint accepts
	}
	endpoints := []endpoint{
		{"/v1/orgs", admin, map[string]any{"name": "NewOrg", "owner_email": "new@example.com"}},
		{"/v1/users", w.ownerTok, map[string]any{"email": "new@example.com", "role": "member"}},
		{"/v1/apps", w.ownerTok, map[string]any{"name": "new-app", "kind": "cloud_function"}},
		{"/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "new-key", "expires_at": rfc(time.Hour)}},
		{"/v1/secrets", w.ownerTok, map[string]any{"name": "NEW", "value": "v"}},
		{"/v1/verify", w.appA.VerifierToken, map[string]any{"key": keep.PlainKey}},
	}
	with := func(m map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for a, b := range m {
			out[a] = b
		}
		out[k] = v
		return out
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	type bad struct {
		name   string
		body   any
		header []string
		status int
		code   string
	}
	for _, ep := range endpoints {
		valid := enc(ep.valid)
		cases := []bad{
			{"bad JSON", `{"name": `, nil, 400, "bad_request"},
			{"not JSON", `name=x`, nil, 400, "bad_request"},
			{"trailing object", valid + ` {}`, nil, 400, "bad_request"},
			{"trailing garbage", valid + `x`, nil, 400, "bad_request"},
			{"two objects", valid + valid, nil, 400, "bad_request"},
			{"unknown field", with(ep.valid, "bogus", 1), nil, 400, "bad_request"},
			{"array", `[` + valid + `]`, nil, 400, "bad_request"},
			{"string", `"hello"`, nil, 400, "bad_request"},
			{"number", `42`, nil, 400, "bad_request"},
			{"empty body", "", nil, 400, "bad_request"},
			{"whitespace body", "  \n", nil, 400, "bad_request"},
			{"huge body", enc(with(ep.valid, firstKey(ep.valid), huge)), nil, 413, "payload_too_large"},
			{"huge padding", valid + strings.Repeat(" ", 200<<10), nil, 413, "payload_too_large"},
			{"text/plain", valid, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
			{"form", valid, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
			{"bad content type", valid, []string{"Content-Type", "%%%"}, 415, "unsupported_media_type"},
		}
		for k := range ep.valid {
			cases = append(cases,
				bad{"number " + k, with(ep.valid, k, 7), nil, 400, "bad_request"},
				bad{"object " + k, with(ep.valid, k, map[string]any{}), nil, 400, "bad_request"},
				bad{"bool " + k, with(ep.valid, k, true), nil, 400, "bad_request"})
		}
		for _, c := range cases {
			r := w.do("POST", ep.path, ep.token, c.body, c.header...)
			if r.Status != c.status {
				t.Errorf("POST %s, %s: %d, want %d: %.300s", ep.path, c.name, r.Status, c.status, r.Body)
				continue
			}
			r.WantError(c.status, c.code)
		}
	}

	// Well-formed JSON with values the domain refuses.
	type call struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
		code         string
	}
	values := []call{
		{"org without name", "POST", "/v1/orgs", admin, map[string]any{"owner_email": "x@example.com"}, 422, "invalid_argument"},
		{"org name too long", "POST", "/v1/orgs", admin, map[string]any{"name": long, "owner_email": "x@example.com"}, 422, "invalid_argument"},
		{"org name control", "POST", "/v1/orgs", admin, map[string]any{"name": "a\x00b", "owner_email": "x@example.com"}, 422, "invalid_argument"},
		{"org bad email", "POST", "/v1/orgs", admin, map[string]any{"name": "NewOrg", "owner_email": "not-an-email"}, 422, "invalid_argument"},
		{"org no email", "POST", "/v1/orgs", admin, map[string]any{"name": "NewOrg"}, 422, "invalid_argument"},
		{"org name taken", "POST", "/v1/orgs", admin, map[string]any{"name": "Default", "owner_email": "x@example.com"}, 409, "conflict"},
		{"user bad role", "POST", "/v1/users", w.ownerTok, map[string]any{"email": "x@example.com", "role": "admin"}, 422, "invalid_argument"},
		{"user no role", "POST", "/v1/users", w.ownerTok, map[string]any{"email": "x@example.com"}, 422, "invalid_argument"},
		{"user role case", "POST", "/v1/users", w.ownerTok, map[string]any{"email": "x@example.com", "role": "Owner"}, 422, "invalid_argument"},
		{"user bad email", "POST", "/v1/users", w.ownerTok, map[string]any{"email": "x@", "role": "member"}, 422, "invalid_argument"},
		{"user display-name email", "POST", "/v1/users", w.ownerTok, map[string]any{"email": "X <x@example.com>", "role": "member"}, 422, "invalid_argument"},
		{"user email too long", "POST", "/v1/users", w.ownerTok, map[string]any{"email": strings.Repeat("x", 250) + "@example.com", "role": "member"}, 422, "invalid_argument"},
		{"user email newline", "POST", "/v1/users", w.ownerTok, map[string]any{"email": "x@example.com\nBcc: y@example.com", "role": "member"}, 422, "invalid_argument"},
		{"user email taken", "POST", "/v1/users", w.ownerTok, map[string]any{"email": "MEMBER@example.com", "role": "member"}, 409, "conflict"},
		{"app bad kind", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": "x", "kind": "lambda"}, 422, "invalid_argument"},
		{"app no kind", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": "x"}, 422, "invalid_argument"},
		{"app empty name", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": "", "kind": "cloud_function"}, 422, "invalid_argument"},
		{"app blank name", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": " \t ", "kind": "cloud_function"}, 422, "invalid_argument"},
		{"app name too long", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": long, "kind": "cloud_function"}, 422, "invalid_argument"},
		{"app name 101 runes", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": strings.Repeat("é", 101), "kind": "cloud_function"}, 422, "invalid_argument"},
		{"app name newline", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": "a\nb", "kind": "cloud_function"}, 422, "invalid_argument"},
		{"app name escape", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": "a\x1b[31mb", "kind": "cloud_function"}, 422, "invalid_argument"},
		{"app name DEL", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": "a\x7fb", "kind": "cloud_function"}, 422, "invalid_argument"},
		{"app name taken", "POST", "/v1/apps", w.ownerTok, map[string]any{"name": "app-a", "kind": "dashboard_app"}, 409, "conflict"},
		{"key no expiry", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k"}, 422, "invalid_argument"},
		{"key null expiry", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": nil}, 422, "invalid_argument"},
		{"key date only", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": now.Add(48 * time.Hour).Format("2006-01-02")}, 400, "bad_request"},
		{"key words", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": "tomorrow"}, 400, "bad_request"},
		{"key 30d", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": "30d"}, 400, "bad_request"},
		{"key empty expiry", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": ""}, 400, "bad_request"},
		{"key no zone", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": now.Add(48 * time.Hour).Format("2006-01-02T15:04:05")}, 400, "bad_request"},
		{"key month 13", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": "2027-13-01T00:00:00Z"}, 400, "bad_request"},
		{"key unix time", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": now.Add(48 * time.Hour).Unix()}, 400, "bad_request"},
		{"key in the past", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": rfc(-time.Hour)}, 422, "invalid_argument"},
		{"key expiring now", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": rfc(-time.Second)}, 422, "invalid_argument"},
		{"key year 1", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": "0001-01-01T00:00:00Z"}, 422, "invalid_argument"},
		{"key beyond 365 days", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": rfc(366 * 24 * time.Hour)}, 422, "invalid_argument"},
		{"key year 9999", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": "9999-12-31T23:59:59Z"}, 422, "invalid_argument"},
		{"key empty name", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "", "expires_at": rfc(time.Hour)}, 422, "invalid_argument"},
		{"key name too long", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": long, "expires_at": rfc(time.Hour)}, 422, "invalid_argument"},
		{"key name tab", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "a\tb", "expires_at": rfc(time.Hour)}, 422, "invalid_argument"},
		{"key name taken", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "existing", "expires_at": rfc(time.Hour)}, 409, "conflict"},
		{"key bad secret name", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": rfc(time.Hour), "save_as_secret": "bad name"}, 422, "invalid_argument"},
		{"key secret taken", "POST", "/v1/apps/" + w.appA.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": rfc(time.Hour), "save_as_secret": "EXISTING"}, 409, "conflict"},
		{"key unknown app", "POST", "/v1/apps/app_nope/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": rfc(time.Hour)}, 404, "not_found"},
		{"key app given a key id", "POST", "/v1/apps/" + keep.ID + "/keys", w.ownerTok, map[string]any{"name": "k", "expires_at": rfc(time.Hour)}, 404, "not_found"},
		{"secret bad name", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "a b", "value": "v"}, 422, "invalid_argument"},
		{"secret slash name", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "a/b", "value": "v"}, 422, "invalid_argument"},
		{"secret empty name", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "", "value": "v"}, 422, "invalid_argument"},
		// Found by FuzzManagementRequest: "." and ".." are no path segment,
		// so /v1/secrets/.. could never read or delete such a secret.
		{"secret dot name", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": ".", "value": "v"}, 422, "invalid_argument"},
		{"secret dot-dot name", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "..", "value": "v"}, 422, "invalid_argument"},
		{"secret long name", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": strings.Repeat("S", 129), "value": "v"}, 422, "invalid_argument"},
		{"secret empty value", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "S"}, 422, "invalid_argument"},
		{"secret value too big", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "S", "value": strings.Repeat("v", 64<<10+1)}, 422, "invalid_argument"},
		{"secret taken", "POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "EXISTING", "value": "other"}, 409, "conflict"},
		// Unknown ids and names.
		{"get unknown app", "GET", "/v1/apps/app_nope", w.ownerTok, nil, 404, "not_found"},
		{"get app by key id", "GET", "/v1/apps/" + keep.ID, w.ownerTok, nil, 404, "not_found"},
		{"delete unknown app", "DELETE", "/v1/apps/app_nope", w.ownerTok, nil, 404, "not_found"},
		{"list unknown app's keys", "GET", "/v1/apps/app_nope/keys", w.ownerTok, nil, 404, "not_found"},
		{"revoke unknown key", "DELETE", "/v1/keys/key_nope", w.ownerTok, nil, 404, "not_found"},
		{"revoke by app id", "DELETE", "/v1/keys/" + w.appA.ID, w.ownerTok, nil, 404, "not_found"},
		{"delete unknown user", "DELETE", "/v1/users/usr_nope", w.ownerTok, nil, 404, "not_found"},
		{"delete user by app id", "DELETE", "/v1/users/" + w.appA.ID, w.ownerTok, nil, 404, "not_found"},
		{"get unknown secret", "GET", "/v1/secrets/NOPE", w.ownerTok, nil, 404, "not_found"},
		{"get secret, case", "GET", "/v1/secrets/existing", w.ownerTok, nil, 404, "not_found"},
		{"delete unknown secret", "DELETE", "/v1/secrets/NOPE", w.ownerTok, nil, 404, "not_found"},
		{"weird app id", "GET", "/v1/apps/%00%01%ff", w.ownerTok, nil, 404, "not_found"},
		{"quote in id", "DELETE", "/v1/keys/key_'%20OR%201=1--", w.ownerTok, nil, 404, "not_found"},
		{"long id", "GET", "/v1/apps/" + strings.Repeat("x", 4000), w.ownerTok, nil, 404, "not_found"},
		{"escaped slash secret", "GET", "/v1/secrets/a%2Fb", w.ownerTok, nil, 404, "not_found"},
		// Query parameters.
		{"state revoked", "GET", "/v1/keys?state=revoked", w.ownerTok, nil, 422, "invalid_argument"},
		{"state bogus", "GET", "/v1/keys?state=bogus", w.ownerTok, nil, 422, "invalid_argument"},
		{"state case", "GET", "/v1/keys?state=ACTIVE", w.ownerTok, nil, 422, "invalid_argument"},
		{"app state bogus", "GET", "/v1/apps/" + w.appA.ID + "/keys?state=bogus", w.ownerTok, nil, 422, "invalid_argument"},
		{"audit limit 0", "GET", "/v1/audit?limit=0", w.ownerTok, nil, 400, "bad_request"},
		{"audit limit -1", "GET", "/v1/audit?limit=-1", w.ownerTok, nil, 400, "bad_request"},
		{"audit limit 1001", "GET", "/v1/audit?limit=1001", w.ownerTok, nil, 400, "bad_request"},
		{"audit limit word", "GET", "/v1/audit?limit=ten", w.ownerTok, nil, 400, "bad_request"},
		{"after negative", "GET", "/v1/events?after=-1", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"after word", "GET", "/v1/events?after=abc", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"after fraction", "GET", "/v1/events?after=1.5", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"after overflow", "GET", "/v1/events?after=99999999999999999999", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"wait word", "GET", "/v1/events?after=0&wait=soon", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"wait unitless", "GET", "/v1/events?after=0&wait=5", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"wait negative", "GET", "/v1/events?after=0&wait=-1s", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"wait too long", "GET", "/v1/events?after=0&wait=61s", w.appA.VerifierToken, nil, 400, "bad_request"},
		{"wait hours", "GET", "/v1/events?after=0&wait=2h", w.appA.VerifierToken, nil, 400, "bad_request"},
		// Unknown routes and wrong methods, in the same JSON shape.
		{"unknown route", "GET", "/v1/nope", w.ownerTok, nil, 404, "not_found"},
		{"unknown route, no token", "GET", "/v1/nope", "", nil, 404, "not_found"},
		{"too deep", "GET", "/v1/apps/" + w.appA.ID + "/keys/x", w.ownerTok, nil, 404, "not_found"},
		{"keys sub-path", "POST", "/v1/keys/x/y", w.ownerTok, nil, 404, "not_found"},
		{"bare /v1", "GET", "/v1", w.ownerTok, nil, 404, ""},
		{"PUT apps", "PUT", "/v1/apps", w.ownerTok, map[string]any{}, 405, "method_not_allowed"},
		{"DELETE apps", "DELETE", "/v1/apps", w.ownerTok, nil, 405, "method_not_allowed"},
		{"PATCH key with nothing", "PATCH", "/v1/keys/" + keep.ID, w.ownerTok, map[string]any{}, 400, "bad_request"},
		{"PUT key", "PUT", "/v1/keys/" + keep.ID, w.ownerTok, map[string]any{}, 405, "method_not_allowed"},
		{"POST keys", "POST", "/v1/keys", w.ownerTok, map[string]any{}, 405, "method_not_allowed"},
		{"GET verify", "GET", "/v1/verify", w.appA.VerifierToken, nil, 405, "method_not_allowed"},
		{"POST events", "POST", "/v1/events", w.appA.VerifierToken, map[string]any{}, 405, "method_not_allowed"},
		{"GET orgs", "GET", "/v1/orgs", admin, nil, 405, "method_not_allowed"},
		{"DELETE me", "DELETE", "/v1/me", w.ownerTok, nil, 405, "method_not_allowed"},
		{"PUT secret", "PUT", "/v1/secrets/EXISTING", w.ownerTok, map[string]any{"value": "x"}, 405, "method_not_allowed"},
	}
	for _, c := range values {
		r := w.do(c.method, c.path, c.token, c.body)
		if r.Status != c.status {
			t.Errorf("%s: %s %.80s = %d, want %d: %.300s", c.name, c.method, c.path, r.Status, c.status, r.Body)
			continue
		}
		r.WantError(c.status, c.code)
		if c.status == http.StatusMethodNotAllowed && r.Header.Get("Allow") == "" {
			t.Errorf("%s: 405 without an Allow header", c.name)
		}
	}

	// Nothing was half-written.
	after := snapshot(w)
	for name, b := range before {
		if !bytes.Equal(b, after[name]) {
			t.Errorf("%s changed after refused requests:\nbefore %s\nafter  %s", name, b, after[name])
		}
	}
	if res := w.verify(w.verA, keep.PlainKey); !res.Valid {
		t.Fatalf("the existing key after all that: %+v", res)
	}
	if v, err := w.owner.GetSecret(ctx(t), "EXISTING"); err != nil || v.Value != "v" {
		t.Fatalf("the existing secret: %+v %v", v, err)
	}
	// Every valid body above is accepted once the junk is gone (and the
	// names the refused attempts used are free).
	for _, ep := range endpoints {
		want := http.StatusCreated
		if ep.path == "/v1/verify" {
			want = http.StatusOK
		}
		w.do("POST", ep.path, ep.token, ep.valid).WantStatus(want)
		w.do("POST", ep.path, ep.token, ep.valid, "Content-Type", "").WantStatus(map[bool]int{true: 200, false: 409}[want == 200])
	}
}

// Values at the edge of the limits are accepted.
func TestLimitsAccepted(t *testing.T) {
	w := newWorld(t)
	now := w.clock.Now().UTC()
	name100 := strings.Repeat("é", 100)
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/apps", map[string]any{"name": name100, "kind": "dashboard_app"}},
		{"/v1/apps/" + w.appA.ID + "/keys", map[string]any{"name": name100, "expires_at": now.Add(365 * 24 * time.Hour).Format(time.RFC3339)}},
		{"/v1/apps/" + w.appA.ID + "/keys", map[string]any{"name": "offset zone", "expires_at": now.Add(time.Hour).In(time.FixedZone("X", -7*3600)).Format(time.RFC3339Nano)}},
		{"/v1/apps/" + w.appA.ID + "/keys", map[string]any{"name": "  padded  ", "expires_at": now.Add(time.Hour).Format(time.RFC3339)}},
		{"/v1/secrets", map[string]any{"name": strings.Repeat("S", 128), "value": strings.Repeat("\"", 64<<10)}}, // 64 KiB that JSON doubles
		{"/v1/users", map[string]any{"email": "Mixed.Case+tag@Example.com", "role": "aura_owner"}},
	} {
		r := w.do("POST", c.path, w.ownerTok, c.body, "Content-Type", "application/json; charset=utf-8")
		if r.Status != http.StatusCreated {
			t.Errorf("POST %s %.60v: %d %.300s", c.path, c.body, r.Status, r.Body)
		}
	}
	keys, err := w.owner.ListKeys(ctx(t), client.StateActive)
	must(t, err)
	names := map[string]bool{}
	for _, k := range keys {
		names[k.Name] = true
	}
	if !names[name100] || !names["padded"] || len(keys) != 3 {
		t.Fatalf("keys: %v", names)
	}
	v, err := w.owner.GetSecret(ctx(t), strings.Repeat("S", 128))
	must(t, err)
	if len(v.Value) != 64<<10 {
		t.Fatalf("the 64 KiB secret came back as %d bytes", len(v.Value))
	}
}

func firstKey(m map[string]any) string {
	for _, k := range []string{"name", "email", "key"} {
		if _, ok := m[k]; ok {
			return k
		}
	}
	panic(fmt.Sprint("no string field in ", m))
}

// snapshot reads every list a refused request must leave alone.
func snapshot(w *world) map[string][]byte {
	out := map[string][]byte{}
	for _, path := range []string{"/v1/users", "/v1/apps", "/v1/keys", "/v1/apps/" + w.appA.ID + "/keys", "/v1/secrets", "/v1/audit?limit=1000"} {
		out[path] = w.do("GET", path, w.ownerTok, nil).WantStatus(http.StatusOK).Body
	}
	page, err := w.verA.Events(ctx(w.t), 0, 0)
	must(w.t, err)
	b, _ := json.Marshal(page)
	out["events"] = b
	return out
}
