package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// DESIGN.md's permission table, and which kind of token may call what.
func TestPermissions(t *testing.T) {
	w := newWorld(t)
	exp := func() string { return w.clock.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339) }
	_, err := w.owner.CreateSecret(ctx(t), client.CreateSecretRequest{Name: "SHARED", Value: "v"})
	must(t, err)
	otherOwner := w.createUser(w.owner, "owner2@example.com", client.RoleOwner)
	otherAura := w.createUser(w.owner, "aura2@example.com", client.RoleAuraOwner)
	admin := w.svc.AdminToken
	verifier := w.appA.VerifierToken

	// Targets made fresh for each case that consumes one.
	n := 0
	newMemberEmail := func() string { n++; return fmt.Sprintf("u%d@example.com", n) }
	freshMember := func() string { return w.createUser(w.owner, newMemberEmail(), client.RoleMember).ID }
	freshApp := func() string { return w.createApp(w.owner, "tmp-"+newMemberEmail()).ID }
	freshKey := func() string { return w.createKey(w.owner, w.appA.ID, "k-"+newMemberEmail()).ID }
	freshOrphan := func() string {
		u := w.createUser(w.owner, newMemberEmail(), client.RoleMember)
		k := w.createKey(w.client(u.Token), w.appB.ID, "o-"+newMemberEmail())
		must(t, w.owner.DeleteUser(ctx(t), u.ID))
		return k.ID
	}

	type call struct {
		name   string
		token  string
		method string
		path   func() string
		body   func() any
		status int
		code   string
	}
	fixed := func(s string) func() string { return func() string { return s } }
	none := func() any { return nil }
	userBody := func(role string) func() any {
		return func() any { return map[string]string{"email": newMemberEmail(), "role": role} }
	}
	keyBody := func() any { return map[string]string{"name": "k-" + newMemberEmail(), "expires_at": exp()} }
	appBody := func() any { return map[string]string{"name": "a-" + newMemberEmail(), "kind": "dashboard_app"} }
	limitBody := func() any {
		return map[string]any{"rate_limit": map[string]any{"requests": 5, "per": "1s"}, "allowed_cidrs": []string{"10.0.0.0/8"}}
	}
	secretBody := func() any { n++; return map[string]string{"name": fmt.Sprintf("S%d", n), "value": "x"} }
	del := func(fresh func() string, prefix string) func() string {
		return func() string { return prefix + fresh() }
	}

	cases := []call{
		// Apps and keys: everyone in the organization.
		{"member creates app", w.memTok, "POST", fixed("/v1/apps"), appBody, 201, ""},
		{"member deletes app", w.memTok, "DELETE", del(freshApp, "/v1/apps/"), none, 204, ""},
		{"member creates key", w.memTok, "POST", fixed("/v1/apps/" + w.appA.ID + "/keys"), keyBody, 201, ""},
		{"member revokes active key", w.memTok, "DELETE", del(freshKey, "/v1/keys/"), none, 204, ""},
		{"member lists keys", w.memTok, "GET", fixed("/v1/keys"), none, 200, ""},
		{"member lists apps", w.memTok, "GET", fixed("/v1/apps"), none, 200, ""},
		{"member lists users", w.memTok, "GET", fixed("/v1/users"), none, 200, ""},
		{"member rotates verifier token", w.memTok, "POST", fixed("/v1/apps/" + w.appB.ID + "/verifier-tokens"), func() any { return map[string]string{"overlap": "0s"} }, 201, ""},
		{"member lists verifier tokens", w.memTok, "GET", fixed("/v1/apps/" + w.appA.ID + "/verifier-tokens"), none, 200, ""},
		{"member lists own tokens", w.memTok, "GET", fixed("/v1/me/tokens"), none, 200, ""},
		{"member creates own token", w.memTok, "POST", fixed("/v1/me/tokens"), func() any { return map[string]string{"name": "t"} }, 201, ""},
		{"aura owner creates app", w.auraTok, "POST", fixed("/v1/apps"), appBody, 201, ""},
		{"aura owner revokes active key", w.auraTok, "DELETE", del(freshKey, "/v1/keys/"), none, 204, ""},
		// Limits: whoever may revoke an active key may limit it, whoever
		// made it; an orphaned key cannot authenticate, so has none to set.
		{"member limits another's key", w.memTok, "PATCH", del(freshKey, "/v1/keys/"), limitBody, 200, ""},
		{"aura owner limits another's key", w.auraTok, "PATCH", del(freshKey, "/v1/keys/"), limitBody, 200, ""},
		{"member limits orphaned key", w.memTok, "PATCH", del(freshOrphan, "/v1/keys/"), limitBody, 409, "conflict"},
		{"owner limits orphaned key", w.ownerTok, "PATCH", del(freshOrphan, "/v1/keys/"), limitBody, 409, "conflict"},
		// Orphaned keys: owners and aura owners only.
		{"member revokes orphaned key", w.memTok, "DELETE", del(freshOrphan, "/v1/keys/"), none, 403, "forbidden"},
		{"aura owner revokes orphaned key", w.auraTok, "DELETE", del(freshOrphan, "/v1/keys/"), none, 204, ""},
		{"owner revokes orphaned key", w.ownerTok, "DELETE", del(freshOrphan, "/v1/keys/"), none, 204, ""},
		// Users: owners and aura owners; owners alone make or remove owners.
		{"member adds member", w.memTok, "POST", fixed("/v1/users"), userBody("member"), 403, "forbidden"},
		{"member adds owner", w.memTok, "POST", fixed("/v1/users"), userBody("owner"), 403, "forbidden"},
		{"member removes member", w.memTok, "DELETE", del(freshMember, "/v1/users/"), none, 403, "forbidden"},
		{"member removes self", w.memTok, "DELETE", fixed("/v1/users/" + w.memberID), none, 403, "forbidden"},
		{"aura owner adds member", w.auraTok, "POST", fixed("/v1/users"), userBody("member"), 201, ""},
		{"aura owner adds aura owner", w.auraTok, "POST", fixed("/v1/users"), userBody("aura_owner"), 201, ""},
		{"aura owner adds owner", w.auraTok, "POST", fixed("/v1/users"), userBody("owner"), 403, "forbidden"},
		{"aura owner removes member", w.auraTok, "DELETE", del(freshMember, "/v1/users/"), none, 204, ""},
		{"aura owner removes aura owner", w.auraTok, "DELETE", fixed("/v1/users/" + otherAura.ID), none, 204, ""},
		{"aura owner removes owner", w.auraTok, "DELETE", fixed("/v1/users/" + otherOwner.ID), none, 403, "forbidden"},
		{"aura owner removes self", w.auraTok, "DELETE", fixed("/v1/users/" + w.auraID), none, 409, "conflict"},
		{"owner adds owner", w.ownerTok, "POST", fixed("/v1/users"), userBody("owner"), 201, ""},
		{"owner removes self", w.ownerTok, "DELETE", fixed("/v1/users/" + w.ownerID), none, 409, "conflict"},
		{"owner removes owner", w.ownerTok, "DELETE", fixed("/v1/users/" + otherOwner.ID), none, 204, ""},
		// Secrets: everyone in the organization.
		{"member creates secret", w.memTok, "POST", fixed("/v1/secrets"), secretBody, 201, ""},
		{"member lists secrets", w.memTok, "GET", fixed("/v1/secrets"), none, 200, ""},
		{"member reads secret", w.memTok, "GET", fixed("/v1/secrets/SHARED"), none, 200, ""},
		{"aura owner reads secret", w.auraTok, "GET", fixed("/v1/secrets/SHARED"), none, 200, ""},
		// The audit log: owners and aura owners.
		{"member reads audit", w.memTok, "GET", fixed("/v1/audit"), none, 403, "forbidden"},
		{"aura owner reads audit", w.auraTok, "GET", fixed("/v1/audit"), none, 200, ""},
		// Organizations: the platform admin alone.
		{"owner creates org", w.ownerTok, "POST", fixed("/v1/orgs"), func() any { return map[string]string{"name": "x", "owner_email": "x@example.com"} }, 403, "forbidden"},
		{"verifier creates org", verifier, "POST", fixed("/v1/orgs"), func() any { return map[string]string{"name": "y", "owner_email": "y@example.com"} }, 403, "forbidden"},
		{"admin creates org", admin, "POST", fixed("/v1/orgs"), func() any { return map[string]string{"name": "z", "owner_email": "z@example.com"} }, 201, ""},
		// User tokens cannot act as a sidecar.
		{"owner verifies", w.ownerTok, "POST", fixed("/v1/verify"), func() any { return map[string]string{"key": "cak_x"} }, 403, "forbidden"},
		{"member reads events", w.memTok, "GET", fixed("/v1/events"), none, 403, "forbidden"},
		{"owner reads events", w.ownerTok, "GET", fixed("/v1/events?after=0"), none, 403, "forbidden"},
		{"admin verifies", admin, "POST", fixed("/v1/verify"), func() any { return map[string]string{"key": "cak_x"} }, 403, "forbidden"},
		{"admin reads events", admin, "GET", fixed("/v1/events"), none, 403, "forbidden"},
		// Verifier tokens may verify and follow their feed, nothing more.
		{"verifier verifies", verifier, "POST", fixed("/v1/verify"), func() any { return map[string]string{"key": "cak_x"} }, 200, ""},
		{"verifier reads events", verifier, "GET", fixed("/v1/events"), none, 200, ""},
	}
	// The admin token and verifier tokens cannot call an organization's
	// management endpoints.
	mgmt := []struct {
		method string
		path   func() string
		body   func() any
	}{
		{"GET", fixed("/v1/me"), none},
		{"GET", fixed("/v1/users"), none},
		{"POST", fixed("/v1/users"), userBody("member")},
		{"DELETE", fixed("/v1/users/" + w.memberID), none},
		{"GET", fixed("/v1/apps"), none},
		{"POST", fixed("/v1/apps"), appBody},
		{"GET", fixed("/v1/apps/" + w.appA.ID), none},
		{"DELETE", fixed("/v1/apps/" + w.appA.ID), none},
		{"POST", fixed("/v1/apps/" + w.appA.ID + "/keys"), keyBody},
		{"GET", fixed("/v1/apps/" + w.appA.ID + "/keys"), none},
		{"GET", fixed("/v1/keys"), none},
		{"DELETE", del(freshKey, "/v1/keys/"), none},
		{"PATCH", del(freshKey, "/v1/keys/"), limitBody},
		{"GET", fixed("/v1/secrets"), none},
		{"POST", fixed("/v1/secrets"), secretBody},
		{"GET", fixed("/v1/secrets/SHARED"), none},
		{"DELETE", fixed("/v1/secrets/SHARED"), none},
		{"GET", fixed("/v1/audit"), none},
		{"GET", fixed("/v1/apps/" + w.appA.ID + "/verifier-tokens"), none},
		{"POST", fixed("/v1/apps/" + w.appA.ID + "/verifier-tokens"), func() any { return map[string]string{"overlap": "0s"} }},
		{"DELETE", fixed("/v1/apps/" + w.appA.ID + "/verifier-tokens/vtk_x"), none},
		{"GET", fixed("/v1/me/tokens"), none},
		{"POST", fixed("/v1/me/tokens"), func() any { return map[string]string{"name": "t"} }},
		{"DELETE", fixed("/v1/me/tokens/utk_x"), none},
	}
	for _, m := range mgmt {
		cases = append(cases,
			call{"admin token: " + m.method, admin, m.method, m.path, m.body, 403, "forbidden"},
			call{"verifier token: " + m.method, verifier, m.method, m.path, m.body, 403, "forbidden"})
	}
	for _, c := range cases {
		path := c.path()
		r := w.do(c.method, path, c.token, c.body())
		if r.Status != c.status {
			t.Errorf("%s: %s %s = %d, want %d: %s", c.name, c.method, path, r.Status, c.status, r.Body)
			continue
		}
		if c.status >= 400 {
			r.WantError(c.status, c.code)
		}
	}

	// Nothing the refused calls touched changed: the member, the owner and
	// app A are still there, the shared secret still readable.
	if _, err := w.member.Me(ctx(t)); err != nil {
		t.Fatalf("the member: %v", err)
	}
	if _, err := w.owner.GetApp(ctx(t), w.appA.ID); err != nil {
		t.Fatalf("app A: %v", err)
	}
	if _, err := w.owner.GetSecret(ctx(t), "SHARED"); err != nil {
		t.Fatalf("secret: %v", err)
	}

	// Without a token, or with a wrong one: 401 with the RFC 6750 challenge.
	for _, path := range []string{"/v1/me", "/v1/apps", "/v1/keys", "/v1/events"} {
		r := w.do("GET", path, "", nil)
		r.WantError(http.StatusUnauthorized, "unauthorized")
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="appkeys"` {
			t.Errorf("GET %s without token: WWW-Authenticate %q", path, got)
		}
		for _, tok := range []string{"aku_wrong", "akv_wrong", "aka_wrong", "nonsense", w.ownerTok + "x"} {
			r := w.do("GET", path, tok, nil)
			r.WantError(http.StatusUnauthorized, "unauthorized")
			if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="appkeys", error="invalid_token"` {
				t.Errorf("GET %s with a bad token: WWW-Authenticate %q", path, got)
			}
		}
	}
	w.do("POST", "/v1/verify", "", map[string]string{"key": "cak_x"}).WantError(http.StatusUnauthorized, "unauthorized")
	w.do("GET", "/v1/me", "", nil, "Authorization", "Basic "+w.ownerTok).WantError(http.StatusUnauthorized, "unauthorized")
}
