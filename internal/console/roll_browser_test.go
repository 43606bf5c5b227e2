package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// rowWith is the visible text of the keys table's row that shows the
// key prefix p ("" when none): rolled keys share their name, not a prefix.
func (b *tab) rowWith(p string) string {
	b.t.Helper()
	q, _ := json.Marshal(p + "…")
	return eval[string](b, fmt.Sprintf(`(() => {
		const tr = [...document.querySelectorAll("table.keys tbody tr")].find(e => e.innerText.includes(%s));
		return tr ? tr.innerText.replace(/\s+/g, " ") : "";
	})()`, q))
}

// The whole roll in a real browser: Roll from the app's view with a 24 h
// overlap, the new key shown once, copied and saved as a secret, both keys
// listed with their link; a roll that lost a race is said in the dialog;
// a roll from the Container Service with "Stop the old key now" takes the
// old key out of Active at once, and, as the secret saved earlier follows
// every roll, says that secret holds the new key instead of showing it.
func TestRollInTheBrowser(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := ks.CreateApp(ctx, owner, "orders-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	first := newServiceKey(t, svc, owner, app.App.ID, "ci-deploy")
	b := newTab(t, svc.URL)
	b.login(svc.OwnerToken)
	b.open("/apps/" + app.App.ID + "/keys")
	b.waitText("ci-deploy")

	// The dialog: labelled, filled for the key, focus inside, Escape closes it.
	b.click("Roll API key ci-deploy")
	b.waitText("Old key keeps working for")
	if !eval[bool](b, `document.getElementById("roll-key").contains(document.activeElement)`) {
		t.Errorf("opening the Roll dialog leaves the focus outside it")
	}
	if label := eval[string](b, `document.getElementById(document.getElementById("roll-key").getAttribute("aria-labelledby")).textContent`); label != "Roll API key" {
		t.Errorf("the Roll dialog is labelled %q", label)
	}
	for _, want := range []string{"Replace ci-deploy (" + first.Key.Prefix + "…)", "until its own expiry (" + first.Key.ExpiresAt.UTC().Format("Jan 2, 2006 15:04 UTC") + ") if that is sooner"} {
		if !b.hasText(want) {
			t.Errorf("the Roll dialog lacks %q", want)
		}
	}
	b.do("press Escape", chromedp.KeyEvent(kb.Escape))
	b.waitUntil("the Roll dialog to close on Escape", `!document.getElementById("roll-key").open`)
	if !eval[bool](b, `document.activeElement.getAttribute("aria-label") === "Roll API key ci-deploy"`) {
		t.Errorf("closing the Roll dialog does not give the focus back to its Roll button")
	}

	// Roll with a 24 hour overlap and a new expiry in 90 days.
	b.click("Roll API key ci-deploy")
	b.click("90 days")
	want90 := time.Now().UTC().AddDate(0, 0, 90).Format("2006-01-02")
	if got := eval[string](b, `document.getElementById("roll-expires").value`); got != want90 {
		t.Errorf("90 days set the date to %q, want %q", got, want90)
	}
	b.click("24 hours")
	b.screenshot("roll-key")
	b.click("Roll API Key")
	b.waitText("API key rolled")
	plain := eval[string](b, `document.querySelector('[aria-label="The new API key"]').value`)
	if !strings.HasPrefix(plain, "cak_") || plain == first.Plain {
		t.Fatalf("the rolled key dialog shows %q", plain)
	}
	old, _ := keyByID(t, svc, owner, first.Key.ID)
	until := old.ExpiresAt.UTC().Format("Jan 2, 2006 15:04 UTC")
	if !b.hasText("The old key (" + first.Key.Prefix + "…) keeps working until " + until) {
		t.Errorf("the rolled key dialog does not say the old key works until %s", until)
	}
	if d := old.ExpiresAt.Sub(time.Now()); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("the old key now expires in %v, want about 24h", d)
	}
	copyThenSave(t, b, plain, "ci-deploy", "orders-ci-key", func() (string, error) {
		_, v, err := ks.ReadSecret(ctx, owner, "orders-ci-key")
		return v, err
	})
	if eval[bool](b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, plain)) {
		t.Errorf("the key is still in the page after the flow ended")
	}

	// Both keys listed, each naming the other.
	second := old.RolledTo
	if row := b.rowWith(first.Key.Prefix); !strings.Contains(row, "Rolled to "+second+", works until "+until) {
		t.Errorf("the old key's row reads %q; want it rolled to %s, working until %s", row, second, until)
	}
	next, _ := keyByID(t, svc, owner, second)
	if row := b.rowWith(next.Prefix); !strings.Contains(row, "Rolled from "+first.Key.ID) {
		t.Errorf("the new key's row reads %q; want it rolled from %s", row, first.Key.ID)
	}

	// From the Container Service: a roll that lost a race is said in the
	// dialog, which stays open.
	b.click("Container Service")
	b.waitText("View API Keys 2")
	b.click("View API Keys")
	b.waitText("Rolled from " + first.Key.ID)
	b.click("Roll API key ci-deploy")
	b.waitText("Old key keeps working for")
	raced, err := ks.RollKey(ctx, owner, second, keyservice.RollKeyRequest{ExpiresAt: time.Now().AddDate(0, 0, 30), Overlap: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b.click("1 hour")
	b.click("Roll API Key")
	b.waitText("Key " + second + " was already rolled; roll the key it was rolled to instead.")
	if !eval[bool](b, `document.getElementById("roll-key").open`) {
		t.Errorf("the Roll dialog closed on a roll that lost a race")
	}
	b.click("Cancel")

	// Stop the old key now: it leaves Active at once.
	b.click("Roll API key ci-deploy")
	b.click("Stop the old key now")
	b.click("Roll API Key")
	// The secret saved above followed both rolls: the page says it holds
	// the newest key, and shows no key.
	b.waitText("Rolled API key “ci-deploy”: secret “orders-ci-key” now holds the new key. The old key (" + raced.Key.Prefix + "…) was revoked: it no longer works.")
	if eval[bool](b, `!!document.getElementById("new-key")`) || fullKeyRE.MatchString(eval[string](b, `document.documentElement.outerHTML`)) {
		t.Errorf("a roll into a secret shows the key")
	}
	if _, v, err := ks.ReadSecret(ctx, owner, "orders-ci-key"); err != nil || v == plain || !fullKeyRE.MatchString(v) {
		t.Errorf("orders-ci-key after two more rolls: %v; want a newer key", err)
	}
	b.waitText("Rolled from " + raced.Key.ID)
	if row := b.rowWith(raced.Key.Prefix); row != "" {
		t.Errorf("the key stopped at once is still listed: %q", row)
	}
	if k, _ := keyByID(t, svc, owner, raced.Key.ID); k.ID != "" {
		t.Errorf("the key stopped at once is still in the service's list: %+v", k)
	}
}
