package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// keyUsageTotal sums a key's points in the default window (the last 24 h).
func (w *world) keyUsageTotal(by *client.Client, keyID string) client.UsageCount {
	w.t.Helper()
	u, err := by.KeyUsage(ctx(w.t), keyID, time.Time{}, time.Time{})
	must(w.t, err)
	var sum client.UsageCount
	for _, p := range u.Points {
		sum.Allowed += p.Allowed
		sum.RateLimited += p.RateLimited
		sum.Forbidden += p.Forbidden
	}
	return sum
}

// A verifier token reports usage for its own app's keys only. App A's
// token naming app B's key, another organization's key or an id that does
// not exist: those entries are ignored (the report is not refused, so one
// odd entry does not lose a sidecar's counts), the answer counts them
// without naming them, and nothing is written for those keys. Unknown and
// foreign ids answer alike, so a report is no oracle for other tenants'
// key ids.
func TestUsageReportCountsOnlyItsOwnAppsKeys(t *testing.T) {
	w := newWorld(t)
	keyA := w.createKey(w.owner, w.appA.ID, "a")
	keyB := w.createKey(w.owner, w.appB.ID, "b")
	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "boss@other.example"})
	must(t, err)
	owner2 := w.client(org2.Owner.Token)
	app2 := w.createApp(owner2, "theirs")
	key2 := w.createKey(owner2, app2.ID, "theirs")

	res, err := w.verA.ReportUsage(ctx(t), []client.UsageCount{
		{KeyID: keyA.ID, Allowed: 7, RateLimited: 2, Forbidden: 1},
		{KeyID: keyB.ID, Allowed: 1000},
		{KeyID: key2.ID, Allowed: 1000},
		{KeyID: "key_doesnotexist0000000", Allowed: 1000},
	})
	must(t, err)
	if res.Accepted != 1 || res.Ignored != 3 {
		t.Fatalf("report answered %+v, want 1 accepted and 3 ignored", res)
	}
	if got := w.keyUsageTotal(w.owner, keyA.ID); got != (client.UsageCount{Allowed: 7, RateLimited: 2, Forbidden: 1}) {
		t.Fatalf("app A's key counted %+v", got)
	}
	if got := w.keyUsageTotal(w.owner, keyB.ID); got.Total() != 0 {
		t.Fatalf("app A's verifier token counted %+v for app B's key", got)
	}
	if got := w.keyUsageTotal(owner2, key2.ID); got.Total() != 0 {
		t.Fatalf("app A's verifier token counted %+v for another organization's key", got)
	}
	// App B's own sidecar may count its key; the totals per app keep apart.
	_, err = w.verB.ReportUsage(ctx(t), []client.UsageCount{{KeyID: keyB.ID, Allowed: 3}})
	must(t, err)
	ua, err := w.member.AppUsage(ctx(t), w.appA.ID, time.Time{}, time.Time{})
	must(t, err)
	if len(ua.Keys) != 1 || ua.Keys[0] != (client.UsageCount{KeyID: keyA.ID, Allowed: 7, RateLimited: 2, Forbidden: 1}) {
		t.Fatalf("app A's usage: %+v", ua.Keys)
	}
	ub, err := w.member.AppUsage(ctx(t), w.appB.ID, time.Time{}, time.Time{})
	must(t, err)
	if len(ub.Keys) != 1 || ub.Keys[0].KeyID != keyB.ID || ub.Keys[0].Allowed != 3 {
		t.Fatalf("app B's usage: %+v", ub.Keys)
	}
}

// Only a verifier token reports usage: a user token (even an owner's) is
// refused with 403, no token with 401, and the platform admin with 403.
func TestUsageReportNeedsAVerifierToken(t *testing.T) {
	w := newWorld(t)
	keyA := w.createKey(w.owner, w.appA.ID, "a")
	body := map[string]any{"keys": []map[string]any{{"key_id": keyA.ID, "allowed": 5}}}
	for _, tok := range []string{w.ownerTok, w.memTok, w.svc.AdminToken} {
		w.do("POST", "/v1/usage", tok, body).WantError(http.StatusForbidden, "forbidden")
	}
	w.do("POST", "/v1/usage", "", body).WantError(http.StatusUnauthorized, "unauthorized")
	w.do("POST", "/v1/usage", "akv_"+strings.Repeat("x", 43), body).WantError(http.StatusUnauthorized, "unauthorized")
	if got := w.keyUsageTotal(w.owner, keyA.ID); got.Total() != 0 {
		t.Fatalf("refused reports counted %+v", got)
	}
}

// A malformed or oversize report is refused whole and counts nothing:
// negative counts, absurd counts, one key twice, too many keys, a body
// past the limit, unknown fields, no key id.
func TestUsageReportRefusesMalformedReports(t *testing.T) {
	w := newWorld(t)
	keyA := w.createKey(w.owner, w.appA.ID, "a")
	tok := w.appA.VerifierToken
	entry := func(fields string) string { return `{"keys":[{"key_id":"` + keyA.ID + `",` + fields + `}]}` }
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf(`{"key_id":"key_%020d","allowed":1}`, i)
	}
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"negative allowed", entry(`"allowed":-5`), 400, "bad_request"},
		{"negative limited", entry(`"allowed":5,"rate_limited":-1`), 400, "bad_request"},
		{"absurd count", entry(`"allowed":1000000000000`), 400, "bad_request"},
		{"fractional count", entry(`"allowed":1.5`), 400, "bad_request"},
		{"count past int64", entry(`"allowed":99999999999999999999`), 400, "bad_request"},
		{"twice", `{"keys":[{"key_id":"` + keyA.ID + `","allowed":5},{"key_id":"` + keyA.ID + `","allowed":5}]}`, 400, "bad_request"},
		{"no key id", `{"keys":[{"allowed":5}]}`, 400, "bad_request"},
		{"not a key id", `{"keys":[{"key_id":"app_x","allowed":5}]}`, 400, "bad_request"},
		{"unknown field", entry(`"allowed":5,"bytes":10`), 400, "bad_request"},
		{"too many keys", `{"keys":[` + strings.Join(many, ",") + `]}`, 400, "bad_request"},
		{"huge body", `{"keys":[` + strings.Repeat(`{"key_id":"`+keyA.ID+`","allowed":1},`, 5000) + `{}]}`, 413, "payload_too_large"},
		{"not JSON", `keys=1`, 400, "bad_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w.do("POST", "/v1/usage", tok, c.body).WantError(c.status, c.code)
		})
	}
	if got := w.keyUsageTotal(w.owner, keyA.ID); got.Total() != 0 {
		t.Fatalf("refused reports counted %+v", got)
	}
	// An empty report is fine and counts nothing.
	res, err := w.verA.ReportUsage(ctx(t), nil)
	must(t, err)
	if res.Accepted != 0 || res.Ignored != 0 {
		t.Fatalf("an empty report answered %+v", res)
	}
}

// Reading usage: another organization's key or app is 404, as one that
// does not exist; a verifier token may not read; a bad window is 400.
func TestUsageReadsStayInTheOrganization(t *testing.T) {
	w := newWorld(t)
	keyA := w.createKey(w.owner, w.appA.ID, "a")
	_, err := w.verA.ReportUsage(ctx(t), []client.UsageCount{{KeyID: keyA.ID, Allowed: 4}})
	must(t, err)
	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "boss@other.example"})
	must(t, err)
	o2 := org2.Owner.Token
	w.do("GET", "/v1/keys/"+keyA.ID+"/usage", o2, nil).WantError(http.StatusNotFound, "not_found")
	w.do("GET", "/v1/keys/key_doesnotexist0000000/usage", o2, nil).WantError(http.StatusNotFound, "not_found")
	w.do("GET", "/v1/apps/"+w.appA.ID+"/usage", o2, nil).WantError(http.StatusNotFound, "not_found")
	w.do("GET", "/v1/keys/"+keyA.ID+"/usage", w.appA.VerifierToken, nil).WantError(http.StatusForbidden, "forbidden")
	w.do("GET", "/v1/keys/"+keyA.ID+"/usage?from=yesterday", w.ownerTok, nil).WantError(http.StatusBadRequest, "bad_request")
	w.do("GET", "/v1/keys/"+keyA.ID+"/usage?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", w.ownerTok, nil).WantError(http.StatusBadRequest, "bad_request")
	w.do("GET", "/v1/keys/"+keyA.ID+"/usage?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", w.ownerTok, nil).WantError(http.StatusBadRequest, "bad_request")

	// The owner's read: every hour of the window, the report in the
	// current one.
	u, err := w.member.KeyUsage(ctx(t), keyA.ID, w.clock.Now().Add(-7*24*time.Hour), time.Time{})
	must(t, err)
	if n := len(u.Points); n < 7*24 || n > 7*24+1 {
		t.Fatalf("a 7-day window has %d points", n)
	}
	last := u.Points[len(u.Points)-1]
	if last.Allowed != 4 || !u.To.Equal(last.Hour.Add(time.Hour)) || !u.From.Equal(u.Points[0].Hour) {
		t.Fatalf("window %s..%s, last point %+v", u.From, u.To, last)
	}
}

// A report raises the keys' Last Used, even though the key was never
// verified (it was served from a sidecar's cache): a key that was only
// rate limited or forbidden is not "used".
func TestUsageReportRaisesLastUsed(t *testing.T) {
	w := newWorld(t)
	used := w.createKey(w.owner, w.appA.ID, "used")
	refused := w.createKey(w.owner, w.appA.ID, "refused")
	_, err := w.verA.ReportUsage(ctx(t), []client.UsageCount{{KeyID: used.ID, Allowed: 1}, {KeyID: refused.ID, RateLimited: 3, Forbidden: 1}})
	must(t, err)
	keys, err := w.owner.ListAppKeys(ctx(t), w.appA.ID, client.StateAny)
	must(t, err)
	ks := keyIDs(keys)
	if lu := ks[used.ID].LastUsedAt; lu == nil || w.clock.Now().Sub(*lu) > time.Minute {
		t.Fatalf("the reported key's last use: %v", lu)
	}
	if lu := ks[refused.ID].LastUsedAt; lu != nil {
		t.Fatalf("a key only refused was marked used at %v", lu)
	}
}
