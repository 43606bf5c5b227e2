package main

import (
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// Rolling an app's verifier token and retiring the old one, then retiring
// the bootstrap owner token, all from the command line against the real
// service.
func TestCLITokens(t *testing.T) {
	svc := servicetest.Start(t)
	e := e2e{t: t, svc: svc}
	owner := svc.OwnerToken
	var app client.CreatedApp
	e.runJSON(owner, &app, "apps", "create", "--name", "shop", "--kind", "cloud_function")
	var key client.CreatedKey
	e.runJSON(owner, &key, "keys", "create", "--app", "shop", "--name", "ci", "--expires", "30d")

	r := e.run(owner, "apps", "rotate-verifier", "shop", "--overlap", "1h")
	var fresh string
	for _, f := range strings.Fields(r.stdout) {
		if strings.HasPrefix(f, "akv_") {
			fresh = f
		}
	}
	if fresh == "" || !strings.Contains(r.stdout, "shown once") || !strings.Contains(r.stdout, "stops working at") {
		t.Fatalf("rotate-verifier printed:\n%s", r.stdout)
	}
	e.wantVerify(fresh, key.PlainKey, client.VerifyValid)
	e.wantVerify(app.VerifierToken, key.PlainKey, client.VerifyValid) // during the overlap
	if r := e.try(owner, "apps", "rotate-verifier", app.ID, "--overlap", "1h"); r.err == nil || !strings.Contains(r.errLine(), "two live verifier tokens") {
		t.Fatalf("a third token: %v", r.errLine())
	}
	if r := e.try(owner, "apps", "rotate-verifier", app.ID, "--overlap", "soon"); r.err == nil || !strings.Contains(r.errLine(), "--overlap") {
		t.Fatalf("a bad overlap: %v", r.errLine())
	}

	var list struct {
		VerifierTokens []client.VerifierToken `json:"verifier_tokens"`
	}
	e.runJSON(owner, &list, "apps", "verifier-tokens", app.ID)
	if len(list.VerifierTokens) != 2 || list.VerifierTokens[0].ExpiresAt == nil || list.VerifierTokens[1].ExpiresAt != nil {
		t.Fatalf("verifier-tokens: %+v", list)
	}
	table := e.run(owner, "apps", "verifier-tokens", "shop").stdout
	if !strings.Contains(table, "current") || strings.Contains(table, fresh) || strings.Contains(table, app.VerifierToken) {
		t.Fatalf("verifier-tokens table:\n%s", table)
	}
	e.run(owner, "apps", "retire-verifier", "shop", list.VerifierTokens[0].ID, "--yes")
	e.wantDenied(app.VerifierToken, key.PlainKey, client.VerifyNotFound)
	e.wantVerify(fresh, key.PlainKey, client.VerifyValid)

	// The bootstrap owner makes a token of their own and retires the
	// bootstrap one.
	r = e.run(owner, "tokens", "create", "--name", "laptop", "--expires", "90d")
	var mine string
	for _, f := range strings.Fields(r.stdout) {
		if strings.HasPrefix(f, "aku_") {
			mine = f
		}
	}
	if mine == "" {
		t.Fatalf("tokens create printed:\n%s", r.stdout)
	}
	var tokens struct {
		Tokens []client.UserToken `json:"tokens"`
	}
	e.runJSON(mine, &tokens, "tokens", "list")
	if len(tokens.Tokens) != 2 || tokens.Tokens[0].Name != "initial" || !tokens.Tokens[1].Current || tokens.Tokens[1].ExpiresAt == nil {
		t.Fatalf("tokens list: %+v", tokens)
	}
	e.run(mine, "tokens", "revoke", tokens.Tokens[0].ID, "--yes")
	if r := e.try(owner, "apps", "list"); r.err == nil {
		t.Fatal("the retired bootstrap token still works")
	}
	if r := e.try(mine, "tokens", "revoke", tokens.Tokens[1].ID, "--yes"); r.err == nil || !strings.Contains(r.errLine(), "only live token") {
		t.Fatalf("revoking the last token: %v", r.errLine())
	}
	if out := e.run(mine, "tokens", "list").stdout; !strings.Contains(out, "laptop") || strings.Contains(out, mine) {
		t.Fatalf("tokens list table:\n%s", out)
	}
}
