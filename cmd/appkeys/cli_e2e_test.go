package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// e2e drives the command line in-process against a real key service.
type e2e struct {
	t   *testing.T
	svc *servicetest.Service
}

// run runs appkeys with token against the service and fails the test on an
// error.
func (e e2e) run(token string, args ...string) cliRun {
	e.t.Helper()
	r := e.try(token, args...)
	if r.err != nil {
		e.t.Fatalf("appkeys %s: %s", strings.Join(args, " "), r.errLine())
	}
	return r
}

// try runs appkeys with token against the service and returns what it did.
func (e e2e) try(token string, args ...string) cliRun {
	e.t.Helper()
	return runCLI(e.t, nil, append(args, "--url", e.svc.URL, "--token", token)...)
}

// runJSON runs appkeys -o json and decodes its output into out.
func (e e2e) runJSON(token string, out any, args ...string) {
	e.t.Helper()
	r := e.run(token, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), out); err != nil {
		e.t.Fatalf("appkeys %s -o json: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

func (e e2e) verify(verifierToken, key string) *client.VerifyResult {
	e.t.Helper()
	c, err := client.New(e.svc.URL, verifierToken)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := c.Verify(context.Background(), key)
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	return v
}

func (e e2e) wantVerify(verifierToken, key string, want client.VerifyCode) {
	e.t.Helper()
	if v := e.verify(verifierToken, key); v.Code != want || v.Valid != (want == client.VerifyValid) {
		e.t.Errorf("verify: %s (valid %v), want %s", v.Code, v.Valid, want)
	}
}

// wantDenied checks that key does not pass for the verifier token's app: the
// verdict is want, or the verifier token itself is refused (401).
func (e e2e) wantDenied(verifierToken, key string, want client.VerifyCode) {
	e.t.Helper()
	c, err := client.New(e.svc.URL, verifierToken)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := c.Verify(context.Background(), key)
	switch {
	case client.IsStatus(err, 401):
		e.t.Logf("verify: the verifier token is refused (%v)", err)
	case err != nil:
		e.t.Errorf("verify: %v", err)
	case v.Valid || v.Code != want:
		e.t.Errorf("verify: %s (valid %v), want %s", v.Code, v.Valid, want)
	}
}

// plainKeys returns the well-formed keys in out, one a line.
func plainKeys(out string) []string {
	var keys []string
	for _, line := range strings.Split(out, "\n") {
		if apikey.Parse(strings.TrimSpace(line)) == nil {
			keys = append(keys, strings.TrimSpace(line))
		}
	}
	return keys
}

func findKey(keys []client.Key, id string) *client.Key {
	for i := range keys {
		if keys[i].ID == id {
			return &keys[i]
		}
	}
	return nil
}

// The "Done when", as a user at a terminal does it: apps and keys
// made with the command line, verified by the sidecar's call, revoked,
// saved as secrets and orphaned.
func TestCLIEndToEnd(t *testing.T) {
	svc := servicetest.Start(t)
	e := e2e{t: t, svc: svc}
	owner := svc.OwnerToken

	// Two apps; each verifier token is printed once.
	r := e.run(owner, "apps", "create", "--name", "shop", "--kind", "cloud_function")
	if !strings.Contains(r.stdout, "VERIFIER TOKEN") || !strings.Contains(r.stdout, "will not be shown again") {
		t.Errorf("apps create output:\n%s", r.stdout)
	}
	var apps struct{ Apps []client.App }
	e.runJSON(owner, &apps, "apps", "list")
	if len(apps.Apps) != 1 || apps.Apps[0].Name != "shop" {
		t.Fatalf("apps list: %+v", apps.Apps)
	}
	shop := apps.Apps[0]
	// The verifier token of the table output is the one the sidecar uses.
	shopVerifier := fieldOf(t, r.stdout, "VERIFIER TOKEN")
	var other client.CreatedApp
	e.runJSON(owner, &other, "apps", "create", "--name", "other", "--kind", "dashboard_app")
	if other.VerifierToken == "" || other.Kind != client.KindDashboardApp {
		t.Fatalf("apps create -o json: %+v", other)
	}

	// A key, printed once, with the notice; --app takes the app's name.
	r = e.run(owner, "keys", "create", "--app", "shop", "--name", "ci", "--expires", "30d")
	keys := plainKeys(r.stdout)
	if len(keys) != 1 || strings.Count(r.stdout, keys[0]) != 1 || !strings.Contains(r.stdout, "will not be shown again") {
		t.Fatalf("keys create printed %d keys:\n%s", len(keys), r.stdout)
	}
	ciKey := keys[0]
	ciID := fieldOf(t, r.stdout, "ID")

	// Listed as active, in a table and in JSON, without the key itself.
	r = e.run(owner, "keys", "list", "--app", shop.ID, "--state", "active")
	if !strings.Contains(r.stdout, ciID) || !strings.Contains(r.stdout, "active") || strings.Contains(r.stdout, ciKey) {
		t.Errorf("keys list:\n%s", r.stdout)
	}
	var listed struct{ Keys []client.Key }
	e.runJSON(owner, &listed, "keys", "list", "--state", "active")
	if k := findKey(listed.Keys, ciID); k == nil || k.State != client.StateActive || k.AppID != shop.ID ||
		!strings.HasPrefix(ciKey, k.Prefix) {
		t.Errorf("keys list -o json: %+v", listed.Keys)
	}
	if a := e.getApp(owner, shop.ID); a.ActiveKeys != 1 {
		t.Errorf("apps get: %d active keys, want 1", a.ActiveKeys)
	}

	// The sidecar's verify: VALID for its app, WRONG_APP for another's.
	if v := e.verify(shopVerifier, ciKey); v.Code != client.VerifyValid || !v.Valid || v.KeyID != ciID || v.AppID != shop.ID {
		t.Errorf("verify: %+v", v)
	}
	e.wantVerify(other.VerifierToken, ciKey, client.VerifyWrongApp)

	// Revoke: refused without a terminal or --yes, done with --yes; then REVOKED.
	r = e.try(owner, "keys", "revoke", ciID)
	if r.err == nil || !strings.Contains(r.errLine(), "refusing to revoke key "+ciID) {
		t.Errorf("revoke without --yes: %q", r.errLine())
	}
	e.wantVerify(shopVerifier, ciKey, client.VerifyValid)
	r = e.run(owner, "keys", "revoke", ciID, "--yes")
	if !strings.Contains(r.stdout, "Revoked key "+ciID) {
		t.Errorf("revoke output %q", r.stdout)
	}
	e.wantVerify(shopVerifier, ciKey, client.VerifyRevoked)
	e.runJSON(owner, &listed, "keys", "list")
	if findKey(listed.Keys, ciID) != nil {
		t.Error("a revoked key is still listed")
	}
	r = e.try(owner, "keys", "revoke", ciID, "--yes")
	if !strings.Contains(r.errLine(), "HTTP 404") {
		t.Errorf("second revoke: %q", r.errLine())
	}

	// --save-as-secret: the key goes into the secret, and neither the
	// command's output nor its JSON contains it; secrets get returns it.
	expires := time.Now().UTC().AddDate(0, 0, 10).Format("2006-01-02")
	r = e.run(owner, "keys", "create", "--app", shop.ID, "--name", "stored", "--expires", expires, "--save-as-secret", "shop-ci-key")
	storedID := fieldOf(t, r.stdout, "ID")
	if ks := plainKeys(r.stdout + r.stderr); len(ks) != 0 {
		t.Errorf("keys create --save-as-secret printed a key:\n%s", r.stdout)
	}
	var created client.CreatedKey
	e.runJSON(owner, &created, "keys", "create", "--app", shop.ID, "--name", "stored2", "--expires", "12h", "--save-as-secret", "shop-ci-key-2")
	if created.PlainKey != "" || created.SecretName != "shop-ci-key-2" {
		t.Errorf("keys create --save-as-secret -o json: %+v", created)
	}
	var secret client.SecretValue
	e.runJSON(owner, &secret, "secrets", "get", "shop-ci-key")
	if apikey.Parse(secret.Value) != nil {
		t.Fatalf("secret shop-ci-key does not hold a key")
	}
	if strings.Contains(r.stdout+r.stderr, secret.Value) {
		t.Error("the saved key was printed by keys create")
	}
	if v := e.verify(shopVerifier, secret.Value); v.Code != client.VerifyValid || v.KeyID != storedID {
		t.Errorf("verify the saved key: %+v (want key %s)", v, storedID)
	}
	if r = e.run(owner, "secrets", "get", "shop-ci-key"); fieldOf(t, r.stdout, "VALUE") != secret.Value {
		t.Errorf("secrets get table:\n%s", r.stdout)
	}

	// Deleting the app orphans its keys (app_deleted); verify says ORPHANED.
	r = e.try(owner, "apps", "delete", shop.ID)
	if !strings.Contains(r.errLine(), "refusing to delete app") {
		t.Errorf("apps delete without --yes: %q", r.errLine())
	}
	e.run(owner, "apps", "delete", shop.ID, "--yes")
	r = e.run(owner, "keys", "list", "--state", "orphaned")
	if !strings.Contains(r.stdout, storedID) || !strings.Contains(r.stdout, "orphaned (app_deleted)") {
		t.Errorf("orphaned keys:\n%s", r.stdout)
	}
	e.runJSON(owner, &listed, "keys", "list", "--state", "orphaned")
	if k := findKey(listed.Keys, storedID); k == nil || k.OrphanReason != client.OrphanAppDeleted {
		t.Errorf("orphaned -o json: %+v", listed.Keys)
	}
	// The key no longer authenticates. Whether the deleted app's sidecar is
	// told ORPHANED or its verifier token is refused with it is the
	// service's choice; either way the key must not pass, and another app's
	// sidecar still hears WRONG_APP.
	e.wantDenied(shopVerifier, secret.Value, client.VerifyOrphaned)
	e.wantVerify(other.VerifierToken, secret.Value, client.VerifyWrongApp)
	if r = e.try(owner, "apps", "get", shop.ID); !strings.Contains(r.errLine(), "HTTP 404") {
		t.Errorf("apps get of a deleted app: %q", r.errLine())
	}

	// Deleting the user who created a key orphans it (creator_deleted).
	var member, member2, aura client.CreatedUser
	e.runJSON(owner, &member, "users", "create", "--email", "member@example.test", "--role", "member")
	e.runJSON(owner, &member2, "users", "create", "--email", "member2@example.test", "--role", "member")
	e.runJSON(owner, &aura, "users", "create", "--email", "aura@example.test", "--role", "aura_owner")
	r = e.run(member.Token, "keys", "create", "--app", "other", "--name", "by-member", "--expires", "1d")
	memberKey, memberKeyID := plainKeys(r.stdout), fieldOf(t, r.stdout, "ID")
	if len(memberKey) != 1 {
		t.Fatalf("member's key create:\n%s", r.stdout)
	}
	e.wantVerify(other.VerifierToken, memberKey[0], client.VerifyValid)
	r = e.run(owner, "users", "delete", member.ID)
	if !strings.Contains(r.stdout, "Deleted user "+member.ID) {
		t.Errorf("users delete: %q", r.stdout)
	}
	e.runJSON(owner, &listed, "keys", "list", "--app", other.ID, "--state", "orphaned")
	if k := findKey(listed.Keys, memberKeyID); k == nil || k.OrphanReason != client.OrphanCreatorDeleted {
		t.Errorf("creator_deleted: %+v", listed.Keys)
	}
	e.wantVerify(other.VerifierToken, memberKey[0], client.VerifyOrphaned)
	var users struct{ Users []client.User }
	e.runJSON(owner, &users, "users", "list")
	for _, u := range users.Users {
		if u.ID == member.ID {
			t.Error("a deleted user is still listed")
		}
	}

	// A member may not revoke an orphaned key; an owner and an aura owner may.
	r = e.try(member2.Token, "keys", "revoke", storedID, "--yes")
	if r.err == nil || !strings.Contains(r.errLine(), "(forbidden, HTTP 403)") || !strings.HasPrefix(r.errLine(), "appkeys: revoke key "+storedID+": ") {
		t.Errorf("member revokes an orphaned key: %q", r.errLine())
	}
	e.run(aura.Token, "keys", "revoke", storedID, "--yes")
	e.run(owner, "keys", "revoke", memberKeyID, "--yes")
	e.runJSON(owner, &listed, "keys", "list", "--state", "orphaned")
	if findKey(listed.Keys, storedID) != nil || findKey(listed.Keys, memberKeyID) != nil {
		t.Errorf("revoked orphans still listed: %+v", listed.Keys)
	}

	// Secrets: create from stdin, list names only, delete.
	r = runCLI(t, strings.NewReader("hunter2\n"), "secrets", "create", "--name", "db-password", "--from-stdin", "--url", svc.URL, "--token", owner)
	if r.err != nil {
		t.Fatal(r.errLine())
	}
	r = e.run(owner, "secrets", "list")
	if !strings.Contains(r.stdout, "db-password") || strings.Contains(r.stdout, "hunter2") {
		t.Errorf("secrets list:\n%s", r.stdout)
	}
	e.runJSON(owner, &secret, "secrets", "get", "db-password")
	if secret.Value != "hunter2" {
		t.Errorf("secret value %q", secret.Value)
	}
	e.run(owner, "secrets", "delete", "db-password")
	if r = e.try(owner, "secrets", "get", "db-password"); !strings.Contains(r.errLine(), "HTTP 404") {
		t.Errorf("get a deleted secret: %q", r.errLine())
	}

	// The service's own messages make the one error line, with no token in it.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apps", "create", "--name", "x", "--kind", "lambda"}, "appkeys: create app: "},
		{[]string{"apps", "create", "--name", "other", "--kind", "cloud_function"}, "(conflict, HTTP 409)"},
		{[]string{"keys", "create", "--app", other.ID, "--name", "n", "--expires", "5000d"}, "(invalid_argument, HTTP 422)"},
		{[]string{"users", "create", "--email", "x@example.test", "--role", "admin"}, "(invalid_argument, HTTP 422)"},
	} {
		r := e.try(owner, tc.args...)
		if line := r.errLine(); !strings.Contains(line, tc.want) || strings.Contains(line, "\n") || strings.Contains(line, owner) {
			t.Errorf("appkeys %s: %q, want one line with %q", strings.Join(tc.args, " "), line, tc.want)
		}
	}
	if r = e.try("usr_not_a_real_token_000000000000", "apps", "list"); !strings.Contains(r.errLine(), "HTTP 401") ||
		strings.Contains(r.errLine(), "usr_not_a_real_token") {
		t.Errorf("bad token: %q", r.errLine())
	}

	// A new organization, made with the admin token, sees none of the first's.
	r = e.run(svc.AdminToken, "orgs", "create", "--name", "globex", "--owner-email", "owner@globex.test")
	globexOwner := fieldOf(t, r.stdout, "OWNER TOKEN")
	e.runJSON(globexOwner, &apps, "apps", "list")
	e.runJSON(globexOwner, &listed, "keys", "list")
	if len(apps.Apps) != 0 || len(listed.Keys) != 0 {
		t.Errorf("another organization sees %d apps and %d keys", len(apps.Apps), len(listed.Keys))
	}
	if r = e.try(globexOwner, "apps", "get", other.ID); !strings.Contains(r.errLine(), "HTTP 404") {
		t.Errorf("another organization's app: %q", r.errLine())
	}
	if r = e.try(owner, "orgs", "create", "--name", "x", "--owner-email", "x@x.test"); !strings.Contains(r.errLine(), "HTTP 40") {
		t.Errorf("orgs create with a user token: %q", r.errLine())
	}
}

func (e e2e) getApp(token, id string) client.App {
	e.t.Helper()
	var a client.App
	e.runJSON(token, &a, "apps", "get", id)
	return a
}

// fieldOf reads a field of a two-column table ("NAME  value").
func fieldOf(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			if v := strings.TrimSpace(rest); v != "" && !strings.Contains(v, "  ") {
				return v
			}
		}
	}
	t.Fatalf("no %s field in:\n%s", name, out)
	return ""
}
