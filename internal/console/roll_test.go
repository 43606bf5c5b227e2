package console_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// rollForm is the Roll dialog's form as a browser posts it from an app's
// keys view: the new expiry as the date picker writes it, and the overlap.
func rollForm(appID string, days int, overlap string) url.Values {
	return url.Values{"expires": {time.Now().UTC().AddDate(0, 0, days).Format("2006-01-02")}, "overlap": {overlap}, "app": {appID}, "tab": {"active"}}
}

// roll posts a key's Roll form with the session's CSRF token.
func (b *browserless) roll(id string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	return b.post("/keys/"+id+"/roll", form)
}

// keyByID reads a key as the service has it, whatever its state.
func keyByID(t *testing.T, svc *servicetest.Service, c keyservice.Caller, id string) (keyservice.Key, bool) {
	t.Helper()
	keys, err := svc.Server.Service.ListKeys(context.Background(), c, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == id {
			return k, true
		}
	}
	return keyservice.Key{}, false
}

// newServiceKey creates a key through the service for a test to roll.
func newServiceKey(t *testing.T, svc *servicetest.Service, c keyservice.Caller, appID, name string) keyservice.KeyCreated {
	t.Helper()
	k, err := svc.Server.Service.CreateKey(context.Background(), c, appID, keyservice.CreateKeyRequest{Name: name, ExpiresAt: time.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A Roll form posted without the session's CSRF token (from another site,
// or a stale page) is refused, and the key stays as it was.
func TestRollWithoutCSRFTokenIsRefused(t *testing.T) {
	svc, b, appID, _ := consoleWithApp(t)
	owner := ownerCaller(t, svc, svc.OwnerToken)
	k := newServiceKey(t, svc, owner, appID, "ci")
	for _, csrf := range []string{"", "forged", b.csrf + "x"} {
		form := rollForm(appID, 90, "24h")
		form.Set("csrf", csrf)
		code, _, page := b.do(http.MethodPost, "/keys/"+k.Key.ID+"/roll", form)
		if code != http.StatusForbidden || !strings.Contains(page, "did not come from your console session") {
			t.Errorf("roll with csrf %q = %d, want 403 saying why", csrf, code)
		}
		if fullKeyRE.MatchString(page) {
			t.Errorf("a refused roll shows a key")
		}
	}
	keys, err := svc.Server.Service.ListKeys(context.Background(), owner, appID, "")
	if err != nil || len(keys) != 1 || keys[0].RolledTo != "" || !keys[0].ExpiresAt.Equal(k.Key.ExpiresAt) {
		t.Fatalf("keys after refused rolls: %+v, %v; want the one key unchanged", keys, err)
	}
}

// Another organization's key id, typed into a forged Roll form, is 404:
// nothing of that key is shown, and nothing changes on either side.
func TestRollingAnotherOrganizationsKeyIs404(t *testing.T) {
	svc, b, appID, _ := consoleWithApp(t)
	ctx := context.Background()
	ks := svc.Server.Service
	other, err := ks.CreateOrg(ctx, ownerCaller(t, svc, svc.AdminToken), "Other Corp", "boss@other.example")
	if err != nil {
		t.Fatal(err)
	}
	them := ownerCaller(t, svc, other.OwnerToken)
	theirApp, err := ks.CreateApp(ctx, them, "their-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	theirs := newServiceKey(t, svc, them, theirApp.App.ID, "their-key")
	for _, app := range []string{appID, theirApp.App.ID, ""} {
		code, _, page := b.roll(theirs.Key.ID, rollForm(app, 90, "24h"))
		if code != http.StatusNotFound || !strings.Contains(page, "That API key no longer exists") {
			t.Errorf("roll another org's key from view %q = %d, want 404 saying so", app, code)
		}
		for _, leak := range []string{"their-key", "their-fn", theirs.Key.Prefix} {
			if strings.Contains(page, leak) {
				t.Errorf("the refusal shows %q of the other organization", leak)
			}
		}
		if fullKeyRE.MatchString(page) {
			t.Errorf("the refusal shows a key")
		}
	}
	got, ok := keyByID(t, svc, them, theirs.Key.ID)
	if !ok || got.RolledTo != "" || got.State != keyservice.StateActive || !got.ExpiresAt.Equal(theirs.Key.ExpiresAt) {
		t.Errorf("their key after our attempts: %+v", got)
	}
	for _, c := range []keyservice.Caller{them, ownerCaller(t, svc, svc.OwnerToken)} {
		if keys, err := ks.ListKeys(ctx, c, "", ""); err != nil || len(keys) > 1 {
			t.Errorf("keys after the attempts: %d, %v; want no new key anywhere", len(keys), err)
		}
	}
}

// A key that is no longer active (orphaned, already rolled, expired) is
// refused through a forged form with the domain's own words, in the Roll
// dialog sent back open; nothing is made.
func TestRollingAKeyNoLongerActiveIsSaidInTheDialog(t *testing.T) {
	svc, b, appID, clk := consoleWithApp(t)
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	mem, memberToken, err := ks.CreateUser(ctx, owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	orphan := newServiceKey(t, svc, ownerCaller(t, svc, memberToken), appID, "orphan")
	if err := ks.DeleteUser(ctx, owner, mem.ID); err != nil {
		t.Fatal(err)
	}
	rolled := newServiceKey(t, svc, owner, appID, "rolled")
	if _, err := ks.RollKey(ctx, owner, rolled.Key.ID, keyservice.RollKeyRequest{ExpiresAt: clk.Now().Add(48 * time.Hour), Overlap: time.Hour}); err != nil {
		t.Fatal(err)
	}
	short, err := ks.CreateKey(ctx, owner, appID, keyservice.CreateKeyRequest{Name: "short", ExpiresAt: clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	revoked := newServiceKey(t, svc, owner, appID, "revoked")
	if err := ks.RevokeKey(ctx, owner, revoked.Key.ID); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	before, _ := ks.ListKeys(ctx, owner, "", "")

	for _, tc := range []struct {
		what, id, says string
	}{
		{"an orphaned key", orphan.Key.ID, "Key " + orphan.Key.ID + " is orphaned: it cannot be rolled; revoke it and create a new key instead."},
		{"a key already rolled", rolled.Key.ID, "Key " + rolled.Key.ID + " was already rolled; roll the key it was rolled to instead."},
		{"an expired key", short.Key.ID, "Key " + short.Key.ID + " has expired: it cannot be rolled; create a new key instead."},
		{"a key revoked meanwhile", revoked.Key.ID, "Key " + revoked.Key.ID + " is revoked: it cannot be rolled."},
	} {
		form := rollForm(appID, 90, "24h")
		// What the dialog showed of the key, as the page posts it back.
		form.Set("name", "shown-name")
		form.Set("prefix", "cak_shown")
		code, _, page := b.roll(tc.id, form)
		if code != http.StatusConflict || !strings.Contains(page, tc.says) {
			t.Errorf("roll %s = %d, want 409 saying %q", tc.what, code, tc.says)
		}
		if !rollDialogOpenRE.MatchString(page) {
			t.Errorf("roll %s: the answer lacks the Roll dialog, open, with the error", tc.what)
		}
		if fullKeyRE.MatchString(page) {
			t.Errorf("roll %s: the refusal shows a key", tc.what)
		}
		// The dialog names the key: as listed, or, once gone from the
		// list, as the page posted it.
		if tc.id == revoked.Key.ID && !strings.Contains(page, `<strong data-fill="name">shown-name</strong> (<code data-fill="prefix">cak_shown</code>`) {
			t.Errorf("roll %s: the dialog does not name the key as the page showed it", tc.what)
		}
		if tc.id == short.Key.ID && !strings.Contains(page, `<strong data-fill="name">short</strong> (<code data-fill="prefix">`+short.Key.Prefix+`</code>`) {
			t.Errorf("roll %s: the dialog does not name the key as listed", tc.what)
		}
	}
	if after, _ := ks.ListKeys(ctx, owner, "", ""); len(after) != len(before) {
		t.Errorf("keys: %d before the refused rolls, %d after", len(before), len(after))
	}
}

// rollDialogOpenRE finds the Roll dialog sent back open.
var rollDialogOpenRE = regexp.MustCompile(`<dialog id="roll-key"[^>]*data-autoopen`)

// What the Roll form lacks or gets wrong is said in the dialog, and no
// key is rolled.
func TestRollFormErrorsAreSaidInTheDialog(t *testing.T) {
	svc, b, appID, _ := consoleWithApp(t)
	owner := ownerCaller(t, svc, svc.OwnerToken)
	k := newServiceKey(t, svc, owner, appID, "ci")
	for _, tc := range []struct {
		what    string
		form    url.Values
		status  int
		says    string
		checked string // the overlap the dialog keeps checked
	}{
		{"no overlap", rollForm(appID, 90, ""), http.StatusUnprocessableEntity, "Choose how long the old key keeps working.", ""},
		{"a made-up overlap", rollForm(appID, 90, "forever"), http.StatusUnprocessableEntity, "Overlap must be a duration such as 24h", ""},
		{"an overlap past the longest lifetime", rollForm(appID, 90, "400d"), http.StatusUnprocessableEntity, "Overlap may be at most 365 days.", ""},
		{"no date", url.Values{"overlap": {"24h"}, "app": {appID}}, http.StatusUnprocessableEntity, "Choose an expiration date.", "24h"},
		{"today", rollForm(appID, 0, "1h"), http.StatusUnprocessableEntity, "The expiration date must be after today.", "1h"},
		{"too far", rollForm(appID, 400, "7d"), http.StatusUnprocessableEntity, "The expiration date may be at most 365 days from now.", "7d"},
	} {
		code, _, page := b.roll(k.Key.ID, tc.form)
		if code != tc.status || !strings.Contains(page, tc.says) || !rollDialogOpenRE.MatchString(page) {
			t.Errorf("%s = %d, want %d with the dialog open saying %q", tc.what, code, tc.status, tc.says)
		}
		if tc.checked != "" && !regexp.MustCompile(`name="overlap" value="`+regexp.QuoteMeta(tc.checked)+`"[^>]* checked`).MatchString(page) {
			t.Errorf("%s: the dialog forgot the overlap %s", tc.what, tc.checked)
		}
		if !strings.Contains(page, `action="/keys/`+k.Key.ID+`/roll"`) {
			t.Errorf("%s: the dialog sent back does not post to the same key", tc.what)
		}
	}
	if got, _ := keyByID(t, svc, owner, k.Key.ID); got.RolledTo != "" {
		t.Fatalf("the key was rolled by a form in error")
	}
}

// A member may roll a key of their organization, as they may create one.
func TestMemberMayRollAKey(t *testing.T) {
	svc, _, appID, _ := consoleWithApp(t)
	owner := ownerCaller(t, svc, svc.OwnerToken)
	_, memberToken, err := svc.Server.Service.CreateUser(context.Background(), owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	k := newServiceKey(t, svc, owner, appID, "made-by-owner")
	m := newBrowserless(t, svc.URL)
	m.login(memberToken)
	if code, page := m.get("/keys"); code != http.StatusOK || !strings.Contains(page, `aria-label="Roll API key made-by-owner"`) {
		t.Fatalf("the member's keys view = %d; want a Roll action on the key", code)
	}
	code, _, page := m.roll(k.Key.ID, rollForm("", 90, "1h"))
	if code != http.StatusCreated || !fullKeyRE.MatchString(page) {
		t.Fatalf("the member's roll = %d; want 201 showing the new key", code)
	}
	if got, _ := keyByID(t, svc, owner, k.Key.ID); got.RolledTo == "" {
		t.Fatalf("the member's roll did not roll the key")
	}
}

// A rolled key is shown once, in the answer to the roll, with Copy API
// Key and a Save As Secret form for the new key; the page says until when
// the old key works. The key is in no later page, in no log line and not
// in the session's row; the keys view shows both keys and their link.
func TestRolledKeyIsShownOnceAndNeverAgain(t *testing.T) {
	var logs servicetest.LogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := servicetest.NewClock(time.Now())
	svc := startConsoleWith(t, console.Options{Logger: logger}, servicetest.WithClock(clk), servicetest.WithLogger(logger))
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := ks.CreateApp(ctx, owner, "api", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	old := newServiceKey(t, svc, owner, app.App.ID, "ci")
	if _, page := b.get("/apps/" + app.App.ID + "/keys"); !strings.Contains(page, `aria-label="Roll API key ci"`) {
		t.Fatalf("the app's keys view has no Roll action for the key")
	}

	code, _, page := b.roll(old.Key.ID, rollForm(app.App.ID, 90, "24h"))
	plain := fullKeyRE.FindString(page)
	if code != http.StatusCreated || plain == "" || plain == old.Plain {
		t.Fatalf("roll = %d, new key shown %v", code, plain != "")
	}
	rolled, _ := keyByID(t, svc, owner, old.Key.ID)
	until := rolled.ExpiresAt.UTC().Format("Jan 2, 2006 15:04 UTC")
	if !rolled.ExpiresAt.After(clk.Now().Add(24*time.Hour-time.Second)) || rolled.ExpiresAt.After(clk.Now().Add(24*time.Hour+time.Second)) {
		t.Errorf("the old key works until %v, want 24h from now (%v)", rolled.ExpiresAt, clk.Now())
	}
	for _, want := range []string{"API key rolled", "Copy API Key", "Save As Secret", "The old key (" + old.Key.Prefix + "…) keeps working until " + until} {
		if !strings.Contains(page, want) {
			t.Errorf("the roll's answer lacks %q", want)
		}
	}
	made := newKeyPage{plain: plain, flow: flowRE.FindStringSubmatch(page)[1], sealed: sealedRE.FindStringSubmatch(page)[1]}

	// Save As Secret records the new key with the secret: the next roll
	// gives that secret the key after it.
	if code, _, _ := b.saveAsSecret(made, "CI_KEY"); code != http.StatusSeeOther {
		t.Fatalf("Save As Secret of the rolled key = %d", code)
	}
	if _, v, err := ks.ReadSecret(ctx, owner, "CI_KEY"); err != nil || v != plain {
		t.Fatalf("CI_KEY holds %q, %v; want the new key", v, err)
	}

	// Reloaded, the view shows both keys, linked, and never the key.
	keys, _ := ks.ListKeys(ctx, owner, app.App.ID, "")
	var next keyservice.Key
	for _, k := range keys {
		if k.RolledFrom == old.Key.ID {
			next = k
		}
	}
	if next.ID == "" {
		t.Fatalf("no key rolled from %s in %+v", old.Key.ID, keys)
	}
	for _, view := range []string{"/apps/" + app.App.ID + "/keys", "/keys"} {
		_, page := b.get(view)
		if fullKeyRE.MatchString(page) || strings.Contains(page, made.sealed) {
			t.Errorf("%s after the roll shows a key or its seal", view)
		}
		for _, want := range []string{"Rolled to " + next.ID + ", works until " + until, "Rolled from " + old.Key.ID} {
			if !strings.Contains(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(page, ""), want) {
				t.Errorf("%s lacks %q", view, want)
			}
		}
		if n := strings.Count(page, `aria-label="Roll API key ci"`); n != 1 {
			t.Errorf("%s offers Roll on %d keys named ci; want the new key alone, not the rolled-away one", view, n)
		}
	}
	res, err := ks.RollKey(ctx, owner, next.ID, keyservice.RollKeyRequest{ExpiresAt: clk.Now().Add(48 * time.Hour), Overlap: time.Minute})
	if err != nil || len(res.Secrets) != 1 || res.Secrets[0] != "CI_KEY" {
		t.Errorf("rolling the console's new key updated secrets %v, %v; want CI_KEY", res.Secrets, err)
	}

	if l := logs.String(); strings.Contains(l, plain) || strings.Contains(l, plain[4:]) {
		t.Errorf("a log line holds the new key")
	}
	if row := sessionRowText(t, svc, b.sessionCookieOf()); strings.Contains(row, plain[4:]) || strings.Contains(row, made.sealed) {
		t.Errorf("the session's row holds the new key or its seal")
	}
}

// Rolled without an overlap, the old key is revoked at once: the page
// says so, and the key leaves the Active tab.
func TestRollWithoutOverlapRevokesTheOldKey(t *testing.T) {
	svc, b, appID, _ := consoleWithApp(t)
	owner := ownerCaller(t, svc, svc.OwnerToken)
	old := newServiceKey(t, svc, owner, appID, "ci")
	code, _, page := b.roll(old.Key.ID, rollForm(appID, 30, "0s"))
	if code != http.StatusCreated || !fullKeyRE.MatchString(page) || !strings.Contains(page, "The old key ("+old.Key.Prefix+"…) was revoked: it no longer works.") {
		t.Fatalf("roll without overlap = %d; want the new key and the old one said revoked", code)
	}
	if _, page := b.get("/apps/" + appID + "/keys"); strings.Contains(page, old.Key.Prefix+"…") {
		t.Errorf("the revoked key is still listed")
	}
}

// When a secret held the old key, the roll gives it the new one: the page
// names the secret and shows no key, and offers no Save As Secret.
func TestRollSaysWhichSecretNowHoldsTheNewKey(t *testing.T) {
	svc, b, appID, _ := consoleWithApp(t)
	ctx := context.Background()
	owner := ownerCaller(t, svc, svc.OwnerToken)
	old, err := svc.Server.Service.CreateKey(ctx, owner, appID, keyservice.CreateKeyRequest{Name: "held", ExpiresAt: time.Now().Add(30 * 24 * time.Hour), SaveAsSecret: "HELD_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	code, h, page := b.roll(old.Key.ID, rollForm(appID, 90, "1h"))
	if code == http.StatusSeeOther {
		code, page = b.get(h.Get("Location"))
	}
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("roll of a key held in a secret = %d", code)
	}
	if !strings.Contains(page, "Rolled API key “held”: secret “HELD_KEY” now holds the new key.") {
		t.Errorf("the answer does not say which secret holds the new key")
	}
	if fullKeyRE.MatchString(page) || sealedRE.MatchString(page) {
		t.Errorf("the answer shows the key, or offers to save it, though a secret holds it")
	}
	_, v, err := svc.Server.Service.ReadSecret(ctx, owner, "HELD_KEY")
	if err != nil || !fullKeyRE.MatchString(v) {
		t.Fatalf("HELD_KEY = %v", err)
	}
	if got, _ := keyByID(t, svc, owner, old.Key.ID); got.RolledTo == "" {
		t.Fatalf("the key was not rolled")
	}
}
