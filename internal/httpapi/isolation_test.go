package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// A user of one organization never sees or changes another's things, on
// any endpoint, whatever their role.
func TestTenantIsolation(t *testing.T) {
	w := newWorld(t)
	key1 := w.createKey(w.member, w.appA.ID, "org1-key")
	_, err := w.owner.CreateSecret(ctx(t), client.CreateSecretRequest{Name: "ORG1_SECRET", Value: "org1-secret-value-zzz"})
	must(t, err)
	me1, err := w.owner.Me(ctx(t))
	must(t, err)

	admin := w.client(w.svc.AdminToken)
	org2, err := admin.CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Second", OwnerEmail: "boss@two.example"})
	must(t, err)
	if org2.Owner.Token == "" || org2.ID == me1.OrgID {
		t.Fatalf("create org: %+v", org2)
	}
	o2 := org2.Owner.Token
	// An org 2 app and key, so org 2's lists are not trivially empty.
	owner2 := w.client(o2)
	app2 := w.createApp(owner2, "app-a") // same name as org 1's: names are per organization
	key2 := w.createKey(owner2, app2.ID, "org1-key")
	mem2 := w.createUser(owner2, "member@example.com", client.RoleMember) // same email as org 1's member

	// Everything of org 1 that must never show up in an org 2 answer.
	org1IDs := []string{me1.OrgID, w.ownerID, w.auraID, w.memberID, w.appA.ID, w.appB.ID, key1.ID, "ORG1_SECRET", "org1-secret-value-zzz", key1.PlainKey}

	cases := []struct {
		method, path string
		body         any
		status       int
	}{
		{"GET", "/v1/me", nil, 200},
		{"GET", "/v1/users", nil, 200},
		{"POST", "/v1/users", map[string]string{"email": "aura@example.com", "role": "member"}, 201},
		{"DELETE", "/v1/users/" + w.memberID, nil, 404},
		{"DELETE", "/v1/users/" + w.ownerID, nil, 404},
		{"GET", "/v1/apps", nil, 200},
		{"GET", "/v1/apps/" + w.appA.ID, nil, 404},
		{"DELETE", "/v1/apps/" + w.appA.ID, nil, 404},
		{"POST", "/v1/apps/" + w.appA.ID + "/keys", map[string]string{"name": "sneaky", "expires_at": w.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, 404},
		{"POST", "/v1/apps/" + w.appA.ID + "/keys", map[string]string{"name": "sneaky2", "expires_at": w.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339), "save_as_secret": "ORG1_SECRET"}, 404},
		{"GET", "/v1/apps/" + w.appA.ID + "/keys", nil, 404},
		{"GET", "/v1/apps/" + w.appA.ID + "/keys?state=orphaned", nil, 404},
		{"GET", "/v1/keys", nil, 200},
		{"GET", "/v1/keys?state=active", nil, 200},
		{"GET", "/v1/keys?state=orphaned", nil, 200},
		{"DELETE", "/v1/keys/" + key1.ID, nil, 404},
		{"PATCH", "/v1/keys/" + key1.ID, map[string]any{"rate_limit": nil, "allowed_cidrs": []string{"0.0.0.0/0"}}, 404},
		{"GET", "/v1/secrets", nil, 200},
		{"GET", "/v1/secrets/ORG1_SECRET", nil, 404},
		{"DELETE", "/v1/secrets/ORG1_SECRET", nil, 404},
		{"GET", "/v1/audit", nil, 200},
		{"GET", "/v1/audit?limit=1000", nil, 200},
	}
	for _, who := range []struct {
		name, token string
	}{{"owner", o2}, {"member", mem2.Token}} {
		for _, c := range cases {
			status := c.status
			if who.name == "member" {
				switch {
				case c.method == "POST" && c.path == "/v1/users", strings.HasPrefix(c.path, "/v1/audit"):
					status = http.StatusForbidden
				case c.method == "DELETE" && strings.HasPrefix(c.path, "/v1/users/"):
					status = http.StatusForbidden // members manage no users, so they learn nothing either
				}
			}
			r := w.do(c.method, c.path, who.token, c.body)
			if r.Status != status {
				t.Errorf("org 2 %s: %s %s = %d, want %d: %s", who.name, c.method, c.path, r.Status, status, r.Body)
				continue
			}
			if r.Status >= 400 {
				r.WantError(status, "")
			}
			sent := c.path + fmt.Sprint(c.body)
			for _, id := range org1IDs {
				// An error may echo what the caller sent; nothing else of org 1's.
				if strings.Contains(string(r.Body), id) && !(r.Status >= 400 && strings.Contains(sent, id)) {
					t.Errorf("org 2 %s: %s %s shows org 1's %q: %s", who.name, c.method, c.path, id, r.Body)
				}
			}
		}
	}
	// Names are per organization: org 2 may hold a secret of the same name,
	// and reads and deletes its own.
	_, err = owner2.CreateSecret(ctx(t), client.CreateSecretRequest{Name: "ORG1_SECRET", Value: "org2's own"})
	must(t, err)
	if v, err := owner2.GetSecret(ctx(t), "ORG1_SECRET"); err != nil || v.Value != "org2's own" {
		t.Fatalf("org 2's secret: %+v %v", v, err)
	}
	must(t, owner2.DeleteSecret(ctx(t), "ORG1_SECRET"))

	// Org 2's sidecar cannot verify org 1's keys (and vice versa), and
	// does not learn that they exist (TestVerifyAcrossOrganizations).
	ver2 := w.client(app2.VerifierToken)
	if res := w.verify(ver2, key1.PlainKey); res.Valid || res.Code != client.VerifyNotFound || res.KeyID != "" {
		t.Fatalf("org 2's app verifying org 1's key: %+v", res)
	}
	if res := w.verify(w.verA, key2.PlainKey); res.Valid || res.Code != client.VerifyNotFound {
		t.Fatalf("org 1's app verifying org 2's key: %+v", res)
	}
	// Org 2's change feed never carries org 1's events.
	head, err := ver2.EventsHead(ctx(t))
	must(t, err)
	must(t, w.owner.RevokeKey(ctx(t), w.createKey(w.owner, w.appA.ID, "revoked-in-org1").ID))
	page, err := ver2.Events(ctx(t), 0, 0)
	must(t, err)
	if len(page.Events) != 0 || page.Next < head {
		t.Fatalf("org 2's feed: %+v", page)
	}

	// Org 1 is untouched.
	if res := w.verify(w.verA, key1.PlainKey); !res.Valid {
		t.Fatalf("org 1's key after org 2's attempts: %+v", res)
	}
	if v, err := w.owner.GetSecret(ctx(t), "ORG1_SECRET"); err != nil || v.Value != "org1-secret-value-zzz" {
		t.Fatalf("org 1's secret: %+v %v", v, err)
	}
	users, err := w.owner.ListUsers(ctx(t))
	must(t, err)
	if len(users) != 3 {
		t.Fatalf("org 1's users: %+v", users)
	}
	for _, u := range users {
		if u.Email == "aura@example.com" && u.Role != client.RoleAuraOwner {
			t.Fatalf("org 1's aura owner changed: %+v", u)
		}
	}
	apps, err := w.owner.ListApps(ctx(t))
	must(t, err)
	if got := appCounts(apps); len(got) != 2 || got[w.appA.ID] != [2]int{1, 0} {
		t.Fatalf("org 1's apps: %v", got)
	}
	keys, err := w.owner.ListKeys(ctx(t), client.StateAny)
	must(t, err)
	if len(keys) != 1 || keys[0].ID != key1.ID {
		t.Fatalf("org 1's keys: %+v", keys)
	}
	audit := w.do("GET", "/v1/audit?limit=1000", w.ownerTok, nil).WantStatus(200).Body
	for _, id := range []string{org2.ID, org2.Owner.ID, app2.ID, key2.ID, mem2.ID} {
		if strings.Contains(string(audit), id) {
			t.Fatalf("org 1's audit shows org 2's %s: %s", id, audit)
		}
	}
}

// TestVerifyAcrossOrganizations: a verifier asking about another
// organization's key, live, revoked or expired, hears exactly what it hears
// for a key that does not exist (NOT_FOUND, nothing more), and pays for it
// from the same failure budget. WRONG_APP stays for another app of its own
// organization, which its owners can see anyway.
func TestVerifyAcrossOrganizations(t *testing.T) {
	const burst = 7
	w := newWorld(t, servicetest.WithConfig(func(c *keyserver.Config) {
		c.VerifyFailureRate, c.VerifyFailureBurst = 0.001, burst // no refill during the test
	}))
	admin := w.client(w.svc.AdminToken)
	org2, err := admin.CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "boss@other.example"})
	must(t, err)
	owner2 := w.client(org2.Owner.Token)
	app2 := w.createApp(owner2, "theirs")
	live2 := w.createKey(owner2, app2.ID, "live")
	revoked2 := w.createKey(owner2, app2.ID, "revoked")
	must(t, owner2.RevokeKey(ctx(t), revoked2.ID))
	expiring2, err := owner2.CreateKey(ctx(t), app2.ID, client.CreateKeyRequest{Name: "expired", ExpiresAt: w.clock.Now().Add(time.Minute)})
	must(t, err)
	mine := w.createKey(w.owner, w.appB.ID, "same-org-other-app")
	w.clock.Advance(2 * time.Minute) // expiring2 is expired now
	unknown, err := apikey.Generate()
	must(t, err)

	// The answer to a key that does not exist, byte for byte.
	notFound := w.do("POST", "/v1/verify", w.appA.VerifierToken, map[string]string{"key": unknown}).WantStatus(http.StatusOK).Body
	if res := w.verify(w.verA, unknown); res.Code != client.VerifyNotFound {
		t.Fatalf("unknown key: %+v", res)
	}
	for name, key := range map[string]string{"live": live2.PlainKey, "revoked": revoked2.PlainKey, "expired": expiring2.PlainKey} {
		r := w.do("POST", "/v1/verify", w.appA.VerifierToken, map[string]string{"key": key}).WantStatus(http.StatusOK)
		if string(r.Body) != string(notFound) {
			t.Errorf("another organization's %s key answered %s; want what an unknown key answers, %s", name, r.Body, notFound)
		}
	}
	// Same organization, another app: WRONG_APP, as before.
	if res := w.verify(w.verA, mine.PlainKey); res.Valid || res.Code != client.VerifyWrongApp {
		t.Fatalf("a key of another app of the same organization: %+v", res)
	}
	// Those were 6 failures of the budget of 7: one more, then 429, for
	// another organization's key as for any guess.
	if res := w.verify(w.verA, live2.PlainKey); res.Code != client.VerifyNotFound {
		t.Fatalf("the budget's last failure: %+v", res)
	}
	_, err = w.verA.Verify(ctx(t), live2.PlainKey)
	wantAPIError(t, err, http.StatusTooManyRequests, "rate_limited")
	// The other organization's own sidecar still gets its live key.
	if res := w.verify(w.client(app2.VerifierToken), live2.PlainKey); !res.Valid {
		t.Fatalf("org 2's own key: %+v", res)
	}
}
