package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// The schemas describe what the real service answers: every required field
// is there, no field is undocumented, and types and enums hold. Each call
// is matched to its operation by method and path template.
func TestOpenAPIDescribesRealAnswers(t *testing.T) {
	d := load(t)
	svc := servicetest.Start(t)
	call := func(token, method, path string, body any, wantStatus int) map[string]any {
		t.Helper()
		return callChecked(t, d, svc.URL, token, method, path, body, wantStatus)
	}
	owner := svc.OwnerToken
	exp := time.Now().UTC().Add(48 * time.Hour).Format(time.RFC3339)

	call("", "GET", "/healthz", nil, 200)
	call("", "GET", "/readyz", nil, 200)
	call("", "GET", "/metrics", nil, 200)
	call("", "GET", "/v1/apps", nil, 401)
	call(svc.AdminToken, "POST", "/v1/orgs", map[string]any{"name": "globex", "owner_email": "o@globex.test"}, 201)
	call(owner, "GET", "/v1/me", nil, 200)
	user := call(owner, "POST", "/v1/users", map[string]any{"email": "m@example.test", "role": "member"}, 201)
	call(owner, "GET", "/v1/users", nil, 200)
	app := call(owner, "POST", "/v1/apps", map[string]any{"name": "shop", "kind": "cloud_function"}, 201)
	appID := fmt.Sprint(app["id"])
	call(owner, "POST", "/v1/apps", map[string]any{"name": "shop", "kind": "cloud_function"}, 409)
	call(owner, "POST", "/v1/apps", map[string]any{"name": "x", "kind": "cloud_function", "extra": 1}, 400)
	call(owner, "GET", "/v1/apps", nil, 200)
	call(owner, "GET", "/v1/apps/"+appID, nil, 200)
	vtBase := "/v1/apps/" + appID + "/verifier-tokens"
	first := list(call(owner, "GET", vtBase, nil, 200)["verifier_tokens"])
	minted := call(owner, "POST", vtBase, map[string]any{"overlap": "1h"}, 201)
	call(owner, "POST", vtBase, map[string]any{"overlap": "1h"}, 409)
	call(owner, "POST", vtBase, map[string]any{"overlap": "30d"}, 422)
	call(owner, "POST", vtBase, map[string]any{"overlap": "soon"}, 400)
	call(owner, "GET", vtBase, nil, 200)
	call(owner, "DELETE", vtBase+"/"+fmt.Sprint(minted["id"]), nil, 409)
	call(owner, "DELETE", vtBase+"/"+fmt.Sprint(obj(first[0])["id"]), nil, 204)
	call(owner, "DELETE", vtBase+"/vtk_nope", nil, 404)
	call(owner, "GET", "/v1/apps/app_nope/verifier-tokens", nil, 404)
	app["verifier_token"] = minted["token"] // the sidecar calls below use the new one
	mine := call(owner, "POST", "/v1/me/tokens", map[string]any{"name": "laptop", "expires_at": exp}, 201)
	call(owner, "POST", "/v1/me/tokens", map[string]any{"name": "old", "expires_at": "2020-01-01T00:00:00Z"}, 422)
	call(owner, "GET", "/v1/me/tokens", nil, 200)
	call(fmt.Sprint(mine["token"]), "DELETE", "/v1/me/tokens/"+fmt.Sprint(mine["id"]), nil, 204)
	call(owner, "DELETE", "/v1/me/tokens/utk_nope", nil, 404)
	key := call(owner, "POST", "/v1/apps/"+appID+"/keys", map[string]any{"name": "ci", "expires_at": exp}, 201)
	call(owner, "POST", "/v1/apps/"+appID+"/keys", map[string]any{"name": "ci2", "expires_at": exp, "save_as_secret": "ci2-key"}, 201)
	call(owner, "POST", "/v1/apps/"+appID+"/keys", map[string]any{"name": "old", "expires_at": "2020-01-01T00:00:00Z"}, 422)
	rollMe := call(owner, "POST", "/v1/apps/"+appID+"/keys", map[string]any{"name": "rolled", "expires_at": exp}, 201)
	rolled := call(owner, "POST", "/v1/keys/"+fmt.Sprint(rollMe["id"])+"/roll", map[string]any{"expires_at": exp, "overlap": "1h"}, 201)
	call(owner, "POST", "/v1/keys/"+fmt.Sprint(rolled["id"])+"/roll", map[string]any{"expires_at": exp, "overlap": "0s", "save_as_secret": "rolled-key"}, 201)
	call(owner, "POST", "/v1/keys/"+fmt.Sprint(rollMe["id"])+"/roll", map[string]any{"expires_at": exp, "overlap": "1h"}, 409)
	call(owner, "POST", "/v1/keys/"+fmt.Sprint(rollMe["id"])+"/roll", map[string]any{"expires_at": exp}, 422)
	call(owner, "POST", "/v1/keys/key_nope/roll", map[string]any{"expires_at": exp, "overlap": "1h"}, 404)
	call(owner, "GET", "/v1/apps/"+appID+"/keys?state=active", nil, 200)
	call(owner, "GET", "/v1/keys", nil, 200)
	if got := call(owner, "GET", "/v1/keys?expiring_within=7d", nil, 200); len(list(got["keys"])) != 3 {
		t.Errorf("keys expiring within 7d: %v, want the three made to expire in 48h (ci, ci2 and the last roll's new key)", got)
	}
	call(owner, "GET", "/v1/apps/"+appID+"/keys?expiring_within=36h", nil, 200)
	call(owner, "GET", "/v1/keys?expiring_within=9999d", nil, 400)
	call(owner, "GET", "/v1/apps/"+appID+"/keys?state=orphaned&expiring_within=7d", nil, 400)
	call(owner, "POST", "/v1/secrets", map[string]any{"name": "db", "value": "hunter2"}, 201)
	call(owner, "GET", "/v1/secrets", nil, 200)
	call(owner, "GET", "/v1/secrets/db", nil, 200)
	call(owner, "GET", "/v1/secrets/nope", nil, 404)
	call(owner, "DELETE", "/v1/secrets/db", nil, 204)
	verifier := fmt.Sprint(app["verifier_token"])
	call(verifier, "POST", "/v1/verify", map[string]any{"key": key["key"]}, 200)
	call(verifier, "POST", "/v1/verify", map[string]any{"key": "cak_nonsense"}, 200)
	call(verifier, "POST", "/v1/usage", map[string]any{"keys": []map[string]any{{"key_id": key["id"], "allowed": 3, "rate_limited": 1}}}, 200)
	call(verifier, "POST", "/v1/usage", map[string]any{"keys": []map[string]any{{"key_id": key["id"], "allowed": -3}}}, 400)
	call(owner, "POST", "/v1/usage", map[string]any{"keys": []any{}}, 403)
	call(owner, "GET", "/v1/keys/"+fmt.Sprint(key["id"])+"/usage", nil, 200)
	call(owner, "GET", "/v1/keys/key_nope/usage", nil, 404)
	call(owner, "GET", "/v1/apps/"+appID+"/usage?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", nil, 200)
	call(owner, "GET", "/v1/apps/"+appID+"/usage", nil, 200)
	call(owner, "GET", "/v1/apps/"+appID+"/usage?from=x", nil, 400)
	head := call(verifier, "GET", "/v1/events", nil, 200)
	call(owner, "DELETE", "/v1/keys/"+fmt.Sprint(key["id"]), nil, 204)
	k2 := call(owner, "POST", "/v1/apps/"+appID+"/keys", map[string]any{"name": "rolled-later", "expires_at": exp}, 201)
	call(owner, "POST", "/v1/keys/"+fmt.Sprint(k2["id"])+"/roll", map[string]any{"expires_at": exp, "overlap": "1h"}, 201)
	call(verifier, "POST", "/v1/verify", map[string]any{"key": key["key"]}, 200)
	// A long-poll answers as soon as its app has news, so the two events
	// may come in two pages: follow the feed as a sidecar does (each page
	// is checked against the schema by call), a few pages at most.
	var types []string
	for next := fmt.Sprint(head["next"]); len(types) < 2 && !t.Failed(); {
		page := call(verifier, "GET", "/v1/events?after="+next+"&wait=5s", nil, 200)
		if len(list(page["events"])) == 0 {
			break // a wait that ran out: nothing more is coming
		}
		types, next = append(types, eventTypes(page)...), fmt.Sprint(page["next"])
	}
	if !slices.Contains(types, "key.revoked") || !slices.Contains(types, "key.expiry_changed") {
		t.Errorf("events after a revoke and a roll are %v, so the Event schema went partly unchecked", types)
	}
	call(verifier, "GET", "/v1/events?after=1000000", nil, 410) // past the head
	call(owner, "DELETE", "/v1/users/"+fmt.Sprint(user["id"]), nil, 204)
	call(owner, "GET", "/v1/keys?state=orphaned", nil, 200)
	call(owner, "DELETE", "/v1/apps/"+appID, nil, 204)
	call(owner, "GET", "/v1/keys?state=orphaned", nil, 200)
	call(owner, "GET", "/v1/audit?limit=50", nil, 200)

	// A body over the limit, on an operation that takes one and on ones
	// that do not, with a good token, a bad one and none.
	huge := map[string]any{"name": strings.Repeat("a", 200<<10)}
	call(owner, "POST", "/v1/apps", huge, 413)
	call("aku_wrong", "POST", "/v1/secrets", huge, 413)
	call(owner, "GET", "/v1/keys", huge, 413)
	call(owner, "DELETE", "/v1/keys/key_x", huge, 413)
	call("", "GET", "/healthz", huge, 413)

	// With --metrics-addr, the API's address answers 404 for /metrics
	// (call reads svc, so this and what follows ask the second service).
	svc = servicetest.Start(t, servicetest.WithConfig(func(c *keyserver.Config) { c.MetricsAddr = "127.0.0.1:0" }))
	call("", "GET", "/metrics", nil, 404)
}

// responseSchema finds the schema of an answer; nil when it has no JSON body.
func responseSchema(t *testing.T, d doc, method, rawPath string, status int, contentType string) doc {
	t.Helper()
	path, _, _ := strings.Cut(rawPath, "?")
	var op doc
	operations(d, func(p, m string, _, o doc) {
		if strings.EqualFold(m, method) && matchTemplate(p, path) {
			op = o
		}
	})
	if op == nil {
		t.Fatalf("%s %s: no operation in openapi.yaml", method, path)
	}
	r, ok := obj(op["responses"])[strconv.Itoa(status)]
	if !ok {
		t.Fatalf("%s %s: answered %d, which openapi.yaml does not list", method, path, status)
	}
	resp := deref(t, d, r)
	content := obj(resp["content"])
	if len(content) == 0 {
		return nil
	}
	if mt, _, _ := strings.Cut(contentType, ";"); content[mt] == nil {
		t.Errorf("%s %s (%d): Content-Type %q is not documented", method, path, status, contentType)
		return nil
	}
	return obj(obj(content["application/json"])["schema"])
}

// matchTemplate reports whether path fits the template, "{x}" matching one
// segment.
func matchTemplate(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if ts[i] != ps[i] && !(placeholder.MatchString(ts[i]) && ps[i] != "") {
			return false
		}
	}
	return true
}

// check validates v against schema, the subset of JSON Schema that
// openapi.yaml uses: $ref, allOf, oneOf, type (and type lists), enum,
// required, properties, items. Objects may hold only documented properties.
func check(d doc, schema doc, v any, at string) []string {
	schema = derefDoc(d, schema)
	var problems []string
	if all := list(schema["allOf"]); len(all) > 0 {
		// Each part checks its own fields; the union says which are documented.
		allowed := map[string]bool{}
		for _, part := range all {
			p := derefDoc(d, obj(part))
			for _, e := range checkLoose(d, p, v, at) {
				problems = append(problems, e)
			}
			for k := range obj(p["properties"]) {
				allowed[k] = true
			}
		}
		if m, ok := v.(map[string]any); ok {
			for _, k := range sortedKeys(m) {
				if !allowed[k] {
					problems = append(problems, fmt.Sprintf("%s.%s is not documented", at, k))
				}
			}
		}
		return problems
	}
	problems = append(problems, checkLoose(d, schema, v, at)...)
	if m, ok := v.(map[string]any); ok {
		props := obj(schema["properties"])
		for _, k := range sortedKeys(m) {
			if _, ok := props[k]; !ok && props != nil {
				problems = append(problems, fmt.Sprintf("%s.%s is not documented", at, k))
			}
		}
	}
	return problems
}

// checkLoose checks v against schema without objecting to extra fields
// (allOf parts see only their own share of an object).
func checkLoose(d doc, schema doc, v any, at string) []string {
	schema = derefDoc(d, schema)
	var problems []string
	if types := schemaTypes(schema); len(types) > 0 && !slices.Contains(types, jsonType(v)) &&
		!(jsonType(v) == "integer" && slices.Contains(types, "number")) {
		return []string{fmt.Sprintf("%s is a %s, want %v", at, jsonType(v), types)}
	}
	if enum := list(schema["enum"]); enum != nil && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		problems = append(problems, fmt.Sprintf("%s = %v is not one of %v", at, v, enum))
	}
	if one := list(schema["oneOf"]); len(one) > 0 {
		n := 0
		for _, alt := range one {
			if len(checkLoose(d, obj(alt), v, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			problems = append(problems, fmt.Sprintf("%s matches %d of the oneOf alternatives, want 1", at, n))
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range list(schema["required"]) {
			if _, ok := x[fmt.Sprint(r)]; !ok {
				problems = append(problems, fmt.Sprintf("%s.%v is required but missing", at, r))
			}
		}
		props := obj(schema["properties"])
		for _, k := range sortedKeys(x) {
			if p := obj(props[k]); p != nil {
				problems = append(problems, check(d, p, x[k], at+"."+k)...)
			}
		}
	case []any:
		if items := obj(schema["items"]); items != nil {
			for i, e := range x {
				problems = append(problems, check(d, items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return problems
}

// derefDoc follows $ref chains; a schema beside its $ref (a description)
// adds nothing to check.
func derefDoc(d doc, s doc) doc {
	for i := 0; i < 10; i++ {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		n, err := resolve(d, ref)
		if err != nil {
			return s
		}
		s = obj(n)
	}
	return s
}

func schemaTypes(s doc) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// eventTypes lists the types of an events page's events.
func eventTypes(page map[string]any) []string {
	var out []string
	for _, e := range list(page["events"]) {
		if m, ok := e.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["type"]))
		}
	}
	return out
}

// callChecked makes one call on the service at base with token (none when
// empty) and a JSON body (none when nil), fails the test unless it is
// answered wantStatus, checks the answer against the operation's schema in
// d, and returns it as a JSON object (nil when it is none).
func callChecked(t *testing.T, d doc, base, token, method, path string, body any, wantStatus int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, wantStatus)
	}
	schema := responseSchema(t, d, method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	if schema == nil {
		if len(bytes.TrimSpace(raw)) > 0 && wantStatus == http.StatusNoContent {
			t.Errorf("%s %s: a 204 with a body", method, path)
		}
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: not JSON: %v", method, path, err)
	}
	for _, problem := range check(d, schema, v, "$") {
		t.Errorf("%s %s (%d): %s", method, path, resp.StatusCode, problem)
	}
	m, _ := v.(map[string]any)
	return m
}
