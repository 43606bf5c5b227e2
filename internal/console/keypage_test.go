package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

var tagRE = regexp.MustCompile(`<[^>]+>`)

// historyRows returns the text of the History section's entries, in order.
func historyRows(t *testing.T, page string) []string {
	t.Helper()
	start := strings.Index(page, `id="key-history"`)
	if start < 0 {
		return nil
	}
	end := strings.Index(page[start:], "</section>")
	if end < 0 {
		t.Fatal("the History section does not end")
	}
	var rows []string
	for _, part := range strings.Split(page[start:start+end], `<tr class="history-entry"`)[1:] {
		rows = append(rows, tagRE.ReplaceAllString(part, " "))
	}
	return rows
}

// A key's page lists its history from the audit log, newest first, with
// who did what; another organization's owner gets 404 and nothing of the
// key; a member sees the history of the keys they created and no other's.
func TestKeyPageShowsItsHistory(t *testing.T) {
	f := newPagesFixture(t)
	ctx := context.Background()
	ks := f.svc.Server.Service
	ci := f.keyIDs[0] // created by the member
	if _, err := ks.UpdateKey(ctx, f.owner, ci, keyservice.KeyUpdate{SetRateLimit: true, RateLimit: &keyservice.RateLimit{Requests: 5, Per: time.Second}}); err != nil {
		t.Fatal(err)
	}
	owners, err := ks.CreateKey(ctx, f.owner, f.appID, keyservice.CreateKeyRequest{Name: "owners-key", ExpiresAt: time.Now().AddDate(0, 0, 30)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.RevokeKey(ctx, f.owner, owners.Key.ID); err != nil {
		t.Fatal(err)
	}

	owner := newBrowserless(t, f.svc.URL)
	owner.login(f.svc.OwnerToken)
	code, page := owner.get("/keys/" + ci)
	rows := historyRows(t, page)
	if code != http.StatusOK || len(rows) != 2 {
		t.Fatalf("owner's key page = %d with history %q", code, rows)
	}
	if !strings.Contains(rows[0], "Limits changed") || !strings.Contains(rows[0], "now rate_limit 5/1s") || !strings.Contains(rows[0], "owner@") {
		t.Errorf("newest entry = %q, want the owner's limit change", rows[0])
	}
	if !strings.Contains(rows[1], "Created") || !strings.Contains(rows[1], "dev@appkeys.local") {
		t.Errorf("oldest entry = %q, want the member's create", rows[1])
	}
	if !strings.Contains(page, `href="/users#`+f.memberID+`"`) {
		t.Error("the actor does not link to the user")
	}
	if !strings.Contains(page, `href="/audit?key=`+ci+`"`) {
		t.Error("no link to the Audit log filtered for the key")
	}
	// A revoked key's page still tells its story.
	if code, page := owner.get("/keys/" + owners.Key.ID); code != http.StatusOK || len(historyRows(t, page)) != 2 || !strings.Contains(historyRows(t, page)[0], "Revoked") {
		t.Errorf("revoked key's page = %d, history %q", code, historyRows(t, page))
	}
	// A roll shows on both keys' pages: the old one rolled (and revoked,
	// with no overlap), the new one created from it, each linking the other
	// in its detail.
	nightly := f.keyIDs[1]
	rolled, err := ks.RollKey(ctx, f.owner, nightly, keyservice.RollKeyRequest{ExpiresAt: time.Now().AddDate(0, 0, 30)})
	if err != nil {
		t.Fatal(err)
	}
	_, page = owner.get("/keys/" + nightly)
	if rows := historyRows(t, page); len(rows) != 4 || !strings.Contains(strings.Join(rows, ""), "Rolled") || !strings.Contains(strings.Join(rows, ""), "rolled from "+nightly) || !strings.Contains(rows[3], "Created") {
		t.Errorf("the old key's history after a roll: %q", rows)
	}
	_, page = owner.get("/keys/" + rolled.Key.ID)
	if rows := historyRows(t, page); len(rows) != 3 || !strings.Contains(strings.Join(rows, ""), "to "+rolled.Key.ID) {
		t.Errorf("the new key's history after a roll: %q", rows)
	}
	// The Audit log filtered for the key holds the same entries.
	if code, page := owner.get("/audit?key=" + ci); code != http.StatusOK || strings.Count(page, `href="/keys/`+ci+`"`) < 2 || strings.Contains(page, owners.Key.ID) {
		t.Errorf("audit filtered by key = %d", code)
	}

	// Another organization: 404, and nothing of the key on the page.
	other := newBrowserless(t, f.svc.URL)
	_, tok, err := ks.CreateUser(ctx, f.otherOwner, "snoop@other.example", keyservice.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	other.login(tok)
	for _, path := range []string{"/keys/" + ci, "/audit?key=" + ci} {
		code, page := other.get(path)
		if path == "/keys/"+ci && code != http.StatusNotFound {
			t.Errorf("another org's owner: GET %s = %d, want 404", path, code)
		}
		for _, leak := range []string{"dev@appkeys.local", "orders-fn", "5 per second", "History", "Limits changed"} {
			if strings.Contains(page, leak) {
				t.Errorf("another org's owner: GET %s shows %q", path, leak)
			}
		}
	}

	// The member: their own key's history, not the owner's key's.
	member := newBrowserless(t, f.svc.URL)
	member.login(f.memberToken)
	if code, page := member.get("/keys/" + ci); code != http.StatusOK || len(historyRows(t, page)) != 2 {
		t.Errorf("member's own key: %d, history %q", code, historyRows(t, page))
	}
	code, page = member.get("/keys/" + owners.Key.ID)
	if code != http.StatusOK || historyRows(t, page) != nil || !strings.Contains(page, "Only an Organization Owner or Aura Owner can see the history of a key someone else created.") {
		t.Errorf("member on another's key: %d, history %q", code, historyRows(t, page))
	}
	if code, _ := member.get("/audit?key=" + ci); code != http.StatusForbidden {
		t.Errorf("member reads the audit log filtered: %d, want 403", code)
	}
}

// Edit limits on a key's page: the change lands through the same service
// call as PATCH /v1/keys/{id} and shows in the page and its history; a
// forged form, another organization's key, an orphaned key and malformed
// limits change nothing, each said in words.
func TestEditKeyLimitsFromTheKeyPage(t *testing.T) {
	f := newPagesFixture(t)
	ctx := context.Background()
	ks := f.svc.Server.Service
	ci := f.keyIDs[0]
	path := "/keys/" + ci + "/limits"
	limits := func(id string) keyservice.Limits {
		t.Helper()
		k, err := ks.GetKey(ctx, f.owner, id)
		if err != nil {
			t.Fatal(err)
		}
		return k.Limits
	}
	form := func(rate, per, cidrs string) url.Values {
		return url.Values{"rate_requests": {rate}, "rate_per": {per}, "allowed_cidrs": {cidrs}}
	}

	owner := newBrowserless(t, f.svc.URL)
	owner.login(f.svc.OwnerToken)
	if code, page := owner.get("/keys/" + ci); code != http.StatusOK || !strings.Contains(page, `id="edit-limits"`) || !strings.Contains(page, `action="`+path+`"`) {
		t.Fatalf("the key page offers no Edit limits dialog (%d)", code)
	}

	// CSRF: a form without the session's token, or with another's.
	for _, token := range []string{"", "forged"} {
		fm := form("1", "1s", "")
		fm.Set("csrf", token)
		if code, _, _ := owner.post(path, fm); code != http.StatusForbidden {
			t.Errorf("edit with csrf %q = %d, want 403", token, code)
		}
	}
	if l := limits(ci); l.RateLimit != nil {
		t.Fatalf("a forged form changed the limits: %+v", l)
	}

	// Another organization's owner: 404, nothing of the key, nothing changed.
	_, tok, err := ks.CreateUser(ctx, f.otherOwner, "snoop@other.example", keyservice.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	other := newBrowserless(t, f.svc.URL)
	other.login(tok)
	if code, _, page := other.post(path, form("1", "1s", "")); code != http.StatusNotFound || strings.Contains(page, "orders-fn") || strings.Contains(page, "dev@appkeys.local") {
		t.Errorf("another org's edit = %d", code)
	}
	if l := limits(ci); l.RateLimit != nil {
		t.Fatalf("another org changed the limits: %+v", l)
	}

	// Malformed limits: 422, said as the create dialog says it, the dialog
	// open again with what was typed, nothing changed.
	for _, c := range []struct{ rate, per, cidrs, says string }{
		{"0", "1s", "", "The rate limit must be from 1 to 1000000."},
		{"many", "1s", "", "The rate limit must be a whole number of requests."},
		{"5", "1d", "", "Choose whether the rate limit counts per second, minute or hour."},
		{"", "1s", "10.0.0.1/8", "did you mean 10.0.0.0/8?"},
		{"", "1s", "intranet", "is not a CIDR range"},
		{strings.Repeat("9", 5000), "1s", "", "The rate limit must be a whole number of requests."},
	} {
		code, _, page := owner.post(path, form(c.rate, c.per, c.cidrs))
		if code != http.StatusUnprocessableEntity || !strings.Contains(page, c.says) || !strings.Contains(page, `id="edit-limits" aria-labelledby="edit-limits-title" data-autoopen`) {
			t.Errorf("edit with %q per %q from %q = %d; want 422 saying %q in the open dialog", c.rate, c.per, c.cidrs, code, c.says)
		}
		if c.cidrs != "" && !strings.Contains(page, `value="`+c.cidrs+`"`) {
			t.Errorf("the form lost the networks typed: %q", c.cidrs)
		}
	}
	if l := limits(ci); l.RateLimit != nil || len(l.AllowedCIDRs) != 0 {
		t.Fatalf("a malformed form changed the limits: %+v", l)
	}

	// A member may change an active key's limits, whoever made it
	// (docs/permissions.md); the change shows on the page and in its history.
	member := newBrowserless(t, f.svc.URL)
	member.login(f.memberToken)
	member.get("/keys/" + ci)
	code, h, _ := member.post(path, form("20", "1m", "10.0.0.0/8, 192.168.1.7"))
	if code != http.StatusSeeOther || h.Get("Location") != "/keys/"+ci {
		t.Fatalf("member's edit = %d to %q", code, h.Get("Location"))
	}
	if l := limits(ci); l.RateLimit == nil || l.RateLimit.Requests != 20 || l.RateLimit.Per != time.Minute || len(l.AllowedCIDRs) != 2 {
		t.Fatalf("limits after the edit: %+v", l)
	}
	_, page := member.get("/keys/" + ci)
	if !strings.Contains(page, "20 per minute · from 10.0.0.0/8, 192.168.1.7/32") || !strings.Contains(page, "Changed the limits of") {
		t.Error("the page does not show the new limits and a flash")
	}
	if rows := historyRows(t, page); len(rows) != 2 || !strings.Contains(rows[0], "Limits changed") {
		t.Errorf("history after the edit: %q", rows)
	}
	// Empty fields remove the limits.
	if code, _, _ := owner.post(path, form("", "1s", "")); code != http.StatusSeeOther {
		t.Fatalf("removing the limits = %d", code)
	}
	if l := limits(ci); l.RateLimit != nil || len(l.AllowedCIDRs) != 0 {
		t.Fatalf("limits not removed: %+v", l)
	}

	// An orphaned key's limits cannot change: no dialog, and a form sent
	// anyway is refused in words, nothing changed.
	if err := ks.DeleteApp(ctx, f.owner, f.appID); err != nil {
		t.Fatal(err)
	}
	if _, page := member.get("/keys/" + ci); strings.Contains(page, `id="edit-limits"`) {
		t.Error("an orphaned key's page offers Edit limits")
	}
	code, _, page = member.post(path, form("1", "1s", ""))
	if code != http.StatusConflict || !strings.Contains(page, "is orphaned: it cannot authenticate, so its limits cannot be changed") {
		t.Errorf("edit of an orphaned key = %d", code)
	}
	if l := limits(ci); l.RateLimit != nil {
		t.Fatalf("an orphaned key's limits changed: %+v", l)
	}
}
