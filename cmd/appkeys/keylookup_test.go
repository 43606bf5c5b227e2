package main

import (
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

const lookedUpKey = `{"id":"key_1","name":"ci","app_id":"app_1","app_name":"shop","prefix":"cak_PLAINK","state":"revoked",
	"orphan_reason":null,"expires_at":"2027-01-31T00:00:00Z","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1",
	"created_by_email":"dev@example.com","last_used_at":null,"leaked_at":"2026-02-01T00:00:00Z",
	"revoked_at":"2026-02-01T00:00:00Z","revoke_reason":"leaked"}`

// TestKeysLookupReadsStdin: the key comes on standard input, travels in
// the body, and is never printed back; an argument is refused, so a key
// cannot land in shell history by habit.
func TestKeysLookupReadsStdin(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{"POST /v1/keys/lookup": {200, lookedUpKey}})
	r := runCLI(t, strings.NewReader("  "+testPlainKey+"\n"), "keys", "lookup", "--url", url, "--token", testToken)
	if r.err != nil {
		t.Fatal(r.errLine())
	}
	if got := f.last(); got.route != "POST /v1/keys/lookup" || got.body["key"] != testPlainKey || got.query != "" {
		t.Fatalf("sent %+v", got)
	}
	for _, want := range []string{"key_1", "shop (app_1)", "revoked (leaked)", "dev@example.com", "never"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, testPlainKey) {
		t.Fatal("lookup printed the key")
	}
	r = runCLI(t, strings.NewReader(""), "keys", "lookup", "--url", url, "--token", testToken)
	if r.err == nil || !strings.Contains(r.err.Error(), "standard input is empty") {
		t.Errorf("empty stdin: %v", r.err)
	}
	r = runCLI(t, strings.NewReader(""), "keys", "lookup", testPlainKey, "--url", url, "--token", testToken)
	if r.err == nil || strings.Contains(r.errLine(), testPlainKey) {
		t.Errorf("a key as an argument: %v", r.errLine())
	}
}

// TestKeysListLeaked: --leaked asks for the keys a leak report named, and
// the table says which they are.
func TestKeysListLeaked(t *testing.T) {
	leakedKey := strings.Replace(strings.Replace(lookedUpKey, `"state":"revoked"`, `"state":"active"`, 1), `,
	"revoked_at":"2026-02-01T00:00:00Z","revoke_reason":"leaked"`, "", 1)
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"GET /v1/keys":            {200, `{"keys":[` + leakedKey + `]}`},
		"GET /v1/apps/app_1/keys": {200, `{"keys":[]}`},
		"GET /v1/apps":            {200, `{"apps":[{"id":"app_1","name":"shop","kind":"cloud_function","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1"}]}`},
	})
	r := runCLI(t, nil, "keys", "list", "--leaked", "--url", url, "--token", testToken)
	if r.err != nil || f.last().query != "leaked=true" || !strings.Contains(r.stdout, "active (leaked)") {
		t.Fatalf("%v %+v\n%s", r.errLine(), f.last(), r.stdout)
	}
	r = runCLI(t, nil, "keys", "list", "--leaked", "--state", "active", "--app", "app_1", "--url", url, "--token", testToken)
	if r.err != nil || f.last().route != "GET /v1/apps/app_1/keys" || f.last().query != "leaked=true&state=active" {
		t.Fatalf("%v %+v", r.errLine(), f.last())
	}
	r = runCLI(t, nil, "keys", "list", "--url", url, "--token", testToken)
	if r.err != nil || f.last().query != "" {
		t.Fatalf("without --leaked: %v %+v", r.errLine(), f.last())
	}
	at := time.Now()
	if got := stateLabel(client.Key{State: client.StateOrphaned, OrphanReason: client.OrphanCreatorDeleted, LeakedAt: &at}); got != "orphaned (creator_deleted, leaked)" {
		t.Errorf("stateLabel = %q", got)
	}
}
