package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestKeyLookup: an owner or aura owner holding a leaked string learns
// which of their organization's keys it is, whatever its state; a member
// is refused before anything is looked up; another organization's key is
// answered exactly as a key that does not exist; the key never reaches
// the logs.
func TestKeyLookup(t *testing.T) {
	logs := &servicetest.LogBuffer{}
	w := newWorld(t, servicetest.WithLogger(newTextLogger(logs)))
	k := w.createKey(w.member, w.appB.ID, "ci")
	w.verify(w.verB, k.PlainKey) // a last-used time to show
	w.svc.Server.Service.FlushUsage(ctx(t))
	gone := w.createKey(w.owner, w.appA.ID, "gone")
	must(t, w.owner.RevokeKey(ctx(t), gone.ID))

	for name, c := range map[string]*client.Client{"owner": w.owner, "aura owner": w.aura} {
		got, err := c.LookupKey(ctx(t), k.PlainKey)
		must(t, err)
		if got.ID != k.ID || got.AppID != w.appB.ID || got.AppName != "app-b" || got.Name != "ci" || got.State != client.StateActive ||
			got.CreatedBy != w.memberID || got.CreatedByEmail != "member@example.com" || got.CreatedAt.IsZero() || got.LastUsedAt == nil {
			t.Errorf("%s's lookup = %+v", name, got)
		}
	}
	got, err := w.owner.LookupKey(ctx(t), gone.PlainKey)
	must(t, err)
	if got.ID != gone.ID || got.State != client.StateRevoked || got.RevokedAt == nil || got.RevokeReason != "" {
		t.Errorf("lookup of a revoked key = %+v", got)
	}
	_, err = w.member.LookupKey(ctx(t), k.PlainKey)
	wantAPIError(t, err, http.StatusForbidden, "forbidden")

	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "boss@other.example"})
	must(t, err)
	unknown, err := apikey.Generate()
	must(t, err)
	foreign := w.do("POST", "/v1/keys/lookup", org2.Owner.Token, map[string]string{"key": k.PlainKey})
	never := w.do("POST", "/v1/keys/lookup", org2.Owner.Token, map[string]string{"key": unknown})
	foreign.WantError(http.StatusNotFound, "not_found")
	if string(foreign.Body) != string(never.Body) || never.Status != foreign.Status {
		t.Fatalf("another org's key answers %d %s; a key that never was %d %s: they must not differ", foreign.Status, foreign.Body, never.Status, never.Body)
	}
	for _, bad := range []string{"", "cak_short", otherLast(k.PlainKey), otherProviderToken} {
		w.do("POST", "/v1/keys/lookup", w.ownerTok, map[string]string{"key": bad}).WantError(http.StatusUnprocessableEntity, "invalid_argument")
	}
	w.do("POST", "/v1/keys/lookup", w.svc.AdminToken, map[string]string{"key": k.PlainKey}).WantError(http.StatusForbidden, "forbidden")
	w.do("POST", "/v1/keys/lookup", w.appA.VerifierToken, map[string]string{"key": k.PlainKey}).WantError(http.StatusForbidden, "forbidden")
	w.do("POST", "/v1/keys/lookup", "", map[string]string{"key": k.PlainKey}).WantError(http.StatusUnauthorized, "unauthorized")
	if strings.Contains(logs.String(), k.PlainKey) {
		t.Fatal("a looked-up key reached the logs")
	}
}

// TestKeyLookupIsAudited: looking up a key is an incident step an
// organization's owners must be able to see afterwards: who asked, and
// which of their keys it was. A lookup that matched nothing of theirs
// (another organization's key, or no key) is recorded too, naming no key:
// neither the string asked about nor another organization's key id.
func TestKeyLookupIsAudited(t *testing.T) {
	w := newWorld(t)
	k := w.createKey(w.member, w.appB.ID, "ci")
	_, err := w.owner.LookupKey(ctx(t), k.PlainKey)
	must(t, err)

	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "boss@other.example"})
	must(t, err)
	other := w.client(org2.Owner.Token)
	w.do("POST", "/v1/keys/lookup", org2.Owner.Token, map[string]string{"key": k.PlainKey}).WantError(http.StatusNotFound, "not_found")

	lookups := func(c *client.Client) []client.AuditRecord {
		t.Helper()
		recs, err := c.ListAudit(ctx(t), 100)
		must(t, err)
		var out []client.AuditRecord
		for _, r := range recs {
			if r.Action == "key.lookup" {
				out = append(out, r)
			}
			if strings.Contains(r.Target+r.Detail, k.PlainKey) || strings.Contains(r.Target+r.Detail, k.PlainKey[4:]) {
				t.Errorf("an audit record holds the looked-up key: %+v", r)
			}
		}
		return out
	}
	mine := lookups(w.owner)
	if len(mine) != 1 || mine[0].Target != k.ID || mine[0].Actor != w.ownerID {
		t.Errorf("the owner's lookup is audited as %+v; want one key.lookup of %s by %s", mine, k.ID, w.ownerID)
	}
	theirs := lookups(other)
	if len(theirs) != 1 || theirs[0].Target != "" || theirs[0].Actor != org2.Owner.ID {
		t.Errorf("the other org's lookup is audited as %+v; want one key.lookup naming no key", theirs)
	}
	for _, r := range theirs {
		if strings.Contains(r.Target+r.Detail, k.ID) {
			t.Errorf("another organization's audit log names our key: %+v", r)
		}
	}
}
