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
