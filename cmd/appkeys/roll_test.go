package main

import (
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// appkeys keys roll, as a user at a terminal does it against a real key
// service: the new key printed once, the old one's new end shown, both
// keys linked in the list; -o json carries the same; with a secret the new
// key is never printed; a refused roll is one clear line.
func TestKeysRoll(t *testing.T) {
	svc := servicetest.Start(t)
	e := e2e{t: t, svc: svc}
	owner := svc.OwnerToken
	var app client.CreatedApp
	e.runJSON(owner, &app, "apps", "create", "--name", "shop", "--kind", "cloud_function")
	r := e.run(owner, "keys", "create", "--app", "shop", "--name", "ci", "--expires", "30d")
	oldKey, oldID := plainKeys(r.stdout)[0], fieldOf(t, r.stdout, "ID")

	r = e.run(owner, "keys", "roll", oldID, "--expires", "90d", "--overlap", "24h")
	keys := plainKeys(r.stdout)
	if len(keys) != 1 || keys[0] == oldKey || !strings.Contains(r.stdout, "will not be shown again") {
		t.Fatalf("keys roll printed %d keys:\n%s", len(keys), r.stdout)
	}
	newKey, newID := keys[0], fieldOf(t, r.stdout, "ID")
	if prev := fieldOf(t, r.stdout, "PREVIOUS"); !strings.Contains(prev, oldID) || !strings.Contains(prev, "works until") {
		t.Errorf("PREVIOUS is %q:\n%s", prev, r.stdout)
	}
	e.wantVerify(app.VerifierToken, oldKey, client.VerifyValid)
	e.wantVerify(app.VerifierToken, newKey, client.VerifyValid)

	r = e.run(owner, "keys", "list", "--app", "shop")
	for _, want := range []string{"rolled to " + newID, "rolled from " + oldID} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("keys list lacks %q:\n%s", want, r.stdout)
		}
	}
	var listed struct{ Keys []client.Key }
	e.runJSON(owner, &listed, "keys", "list")
	if o, n := findKey(listed.Keys, oldID), findKey(listed.Keys, newID); o == nil || n == nil || o.RolledTo != newID || n.RolledFrom != oldID {
		t.Fatalf("keys list -o json: %+v", listed.Keys)
	}

	// -o json, into a secret: the key is in neither stdout nor stderr.
	var rolled client.RolledKey
	e.runJSON(owner, &rolled, "keys", "roll", newID, "--expires", "2d", "--overlap", "0s", "--save-as-secret", "CI_KEY")
	if rolled.PlainKey != "" || len(rolled.Secrets) != 1 || rolled.Previous.ID != newID || rolled.Previous.State != client.StateRevoked || rolled.RolledFrom != newID {
		t.Fatalf("keys roll -o json: %+v", rolled)
	}
	e.wantVerify(app.VerifierToken, newKey, client.VerifyRevoked)
	r = e.run(owner, "keys", "roll", rolled.ID, "--expires", "2d", "--overlap", "1h")
	if len(plainKeys(r.stdout)) != 0 || !strings.Contains(r.stdout, "CI_KEY") {
		t.Errorf("a roll of a key saved as a secret printed the key or did not name the secret:\n%s", r.stdout)
	}

	// Refused: a revoked key, a missing overlap.
	if r := e.try(owner, "keys", "roll", newID, "--expires", "2d", "--overlap", "1h"); r.err == nil || !strings.Contains(r.errLine(), "revoked") {
		t.Errorf("rolling a revoked key: %q", r.errLine())
	}
	if r := e.try(owner, "keys", "roll", rolled.ID, "--expires", "2d"); r.err == nil || !strings.Contains(r.errLine(), "overlap") {
		t.Errorf("no --overlap: %q", r.errLine())
	}
}
