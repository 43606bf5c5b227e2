package main

import (
	"context"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// keys list --expiring-within sends expiring_within, in days when whole, and
// refuses what cannot mean a window before any call.
func TestKeysListExpiringWithin(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"GET /v1/keys":            {200, `{"keys":[]}`},
		"GET /v1/apps/app_1/keys": {200, `{"keys":[` + createdKey + `}]}`},
	})
	for flag, query := range map[string]string{"7d": "expiring_within=7d", "168h": "expiring_within=7d", "36h": "expiring_within=36h0m0s"} {
		r := runCLI(t, nil, "keys", "list", "--url", url, "--token", testToken, "--expiring-within", flag)
		if r.err != nil || f.last().route != "GET /v1/keys" || f.last().query != query {
			t.Errorf("--expiring-within %s: %v %+v", flag, r.err, f.last())
		}
	}
	r := runCLI(t, nil, "keys", "list", "--url", url, "--token", testToken, "--app", "app_1", "--state", "active", "--expiring-within", "7d")
	if r.err != nil || f.last().query != "expiring_within=7d&state=active" || !strings.Contains(r.stdout, "shop (app_1)") {
		t.Fatalf("%v %+v\n%s", r.err, f.last(), r.stdout)
	}
	calls := len(f.calls)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--expiring-within", "soon"}, `invalid --expiring-within "soon"`},
		{[]string{"--expiring-within", "0d"}, `invalid --expiring-within "0d"`},
		{[]string{"--expiring-within", "-7d"}, `invalid --expiring-within "-7d"`},
		{[]string{"--expiring-within", "99999999999999999999d"}, `invalid --expiring-within`},
		{[]string{"--expiring-within", "7d", "--state", "orphaned"}, "--expiring-within lists active keys"},
	} {
		r := runCLI(t, nil, append([]string{"keys", "list", "--url", url, "--token", testToken}, c.args...)...)
		if r.err == nil || !strings.Contains(r.errLine(), c.want) {
			t.Errorf("keys list %v: %q, want %q", c.args, r.errLine(), c.want)
		}
	}
	if len(f.calls) != calls {
		t.Errorf("a refused flag still called the service: %+v", f.calls[calls:])
	}
}

// Against the real key service (SQLite, or PostgreSQL with
// APPKEYS_TEST_STORE=postgres): only the org's own active keys due within
// the window are listed; a window the service refuses is one clear line.
func TestCLIKeysExpiringWithin(t *testing.T) {
	svc := servicetest.Start(t)
	e := e2e{t: t, svc: svc}
	owner := svc.OwnerToken
	e.run(owner, "apps", "create", "--name", "shop", "--kind", "cloud_function")
	e.run(owner, "apps", "create", "--name", "board", "--kind", "dashboard_app")
	id := func(args ...string) string {
		return fieldOf(t, e.run(owner, append([]string{"keys", "create"}, args...)...).stdout, "ID")
	}
	soon := id("--app", "shop", "--name", "soon", "--expires", "3d")
	id("--app", "shop", "--name", "late", "--expires", "30d")
	revoked := id("--app", "shop", "--name", "revoked", "--expires", "2d")
	e.run(owner, "keys", "revoke", revoked, "--yes")
	boardSoon := id("--app", "board", "--name", "soon", "--expires", "5d")
	// Another organization's key, due tomorrow.
	admin, err := client.New(svc.URL, svc.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	org2, err := admin.CreateOrg(context.Background(), client.CreateOrgRequest{Name: "other", OwnerEmail: "o@other.example"})
	if err != nil {
		t.Fatal(err)
	}
	e.run(org2.Owner.Token, "apps", "create", "--name", "shop", "--kind", "cloud_function")
	other := fieldOf(t, e.run(org2.Owner.Token, "keys", "create", "--app", "shop", "--name", "soon", "--expires", "1d").stdout, "ID")

	list := func(token string, args ...string) []string {
		var out struct{ Keys []client.Key }
		e.runJSON(token, &out, append([]string{"keys", "list"}, args...)...)
		var ids []string
		for _, k := range out.Keys {
			ids = append(ids, k.ID)
		}
		return ids
	}
	same := func(got []string, want ...string) bool {
		if len(got) != len(want) {
			return false
		}
		for _, w := range want {
			if !strings.Contains(strings.Join(got, ","), w) {
				return false
			}
		}
		return true
	}
	if got := list(owner, "--expiring-within", "7d"); !same(got, soon, boardSoon) {
		t.Errorf("keys list --expiring-within 7d = %v, want %s and %s", got, soon, boardSoon)
	}
	if got := list(owner, "--expiring-within", "7d", "--app", "shop"); !same(got, soon) {
		t.Errorf("keys list --app shop --expiring-within 7d = %v, want %s", got, soon)
	}
	if got := list(owner, "--expiring-within", "4d"); !same(got, soon) {
		t.Errorf("keys list --expiring-within 4d = %v, want %s", got, soon)
	}
	if got := list(org2.Owner.Token, "--expiring-within", "7d"); !same(got, other) {
		t.Errorf("the other org's keys list --expiring-within 7d = %v, want only %s", got, other)
	}
	// The table shows the key with its expiry.
	r := e.run(owner, "keys", "list", "--expiring-within", "7d")
	if !strings.Contains(r.stdout, soon) || strings.Contains(r.stdout, "late") || strings.Contains(r.stdout, revoked) {
		t.Errorf("keys list --expiring-within 7d table:\n%s", r.stdout)
	}
	// Past the longest key life: the service's reason, on one line.
	r = e.try(owner, "keys", "list", "--expiring-within", "400d")
	if r.err == nil || strings.Contains(r.errLine(), "\n") || !strings.Contains(r.errLine(), "at most 365d") {
		t.Errorf("--expiring-within 400d: %q", r.errLine())
	}
}
