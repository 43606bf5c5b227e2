package console_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// press sends keys to whatever has the focus, as a keyboard does.
func (b *tab) press(keys string, opts ...chromedp.KeyOption) {
	b.t.Helper()
	b.do("press "+fmt.Sprintf("%q", keys), chromedp.KeyEvent(keys, opts...))
}

func (b *tab) shiftTab() { b.press(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)) }

// tabTo presses Tab until the focus is on the element js finds, as a
// keyboard user reaches a control; a page of this size needs far fewer
// than the bound.
func (b *tab) tabTo(what, js string) {
	b.t.Helper()
	for range 120 {
		if eval[bool](b, fmt.Sprintf(`document.activeElement === (%s)`, js)) {
			return
		}
		b.press(kb.Tab)
	}
	b.t.Fatalf("Tab never reached %s; the focus is on %s", what, eval[string](b, `document.activeElement.outerHTML.slice(0, 120)`))
}

// tabToControl is tabTo for a control named by its words, in the open
// dialog or the page.
func (b *tab) tabToControl(label string) {
	b.t.Helper()
	b.tabTo(label, string(control(label)))
}

func dialogOpen(id string) string {
	return fmt.Sprintf(`!!document.querySelector("dialog#%s[open]")`, id)
}

// focusStaysIn presses Tab, then Shift+Tab, more times than the dialog
// has controls, and fails when the focus leaves it.
func (b *tab) focusStaysIn(id string) {
	b.t.Helper()
	inside := fmt.Sprintf(`document.getElementById(%q).contains(document.activeElement)`, id)
	if !eval[bool](b, inside) {
		b.t.Fatalf("dialog %s opened without the focus in it (focus on %s)", id, eval[string](b, `document.activeElement.outerHTML.slice(0, 120)`))
	}
	for i := range 24 {
		if i < 12 {
			b.press(kb.Tab)
		} else {
			b.shiftTab()
		}
		if !eval[bool](b, inside) {
			b.t.Fatalf("after %d presses the focus left dialog %s for %s", i+1, id, eval[string](b, `document.activeElement.outerHTML.slice(0, 120)`))
		}
	}
}

// escapeReturnsFocus closes the dialog with Escape and checks the focus
// is back on the control that opened it.
func (b *tab) escapeReturnsFocus(id, opener string) {
	b.t.Helper()
	b.press(kb.Escape)
	b.waitUntil("dialog "+id+" to close", "!"+dialogOpen(id))
	if !eval[bool](b, fmt.Sprintf(`document.activeElement === (%s)`, control(opener))) {
		b.t.Errorf("closing %s left the focus on %s, not on %q", id, eval[string](b, `document.activeElement.outerHTML.slice(0, 120)`), opener)
	}
}

// TestDialogsByKeyboardOnly opens, uses and closes Create API Key, Revoke
// and Roll with the keyboard alone: Tab to the control, Enter to open, the
// focus held inside while open, Escape to close with the focus back where
// it was, and the form completed by keys.
func TestDialogsByKeyboardOnly(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := ks.CreateApp(ctx, owner, "orders-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.CreateKey(ctx, owner, app.App.ID, keyservice.CreateKeyRequest{Name: "to-roll", ExpiresAt: time.Now().AddDate(0, 0, 60)}); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, svc.URL)
	b.login(svc.OwnerToken)
	b.open("/apps/" + app.App.ID + "/keys")
	b.waitText("to-roll")

	// Create API Key.
	b.tabToControl("Create API Key")
	b.press(kb.Enter)
	b.waitUntil("Create API Key to open", dialogOpen("create-key"))
	b.focusStaysIn("create-key")
	b.escapeReturnsFocus("create-key", "Create API Key")
	b.press(kb.Enter)
	b.waitUntil("Create API Key to open again", dialogOpen("create-key"))
	b.tabTo("API Key Name", `document.getElementById("key-name")`)
	b.press("kb-made")
	b.tabToControl("90 days")
	b.press(" ")
	b.tabToControl("Create API Key")
	b.press(kb.Enter)
	b.waitText("API key created")
	b.focusStaysIn("new-key")
	b.press(kb.Escape) // as Close: the key leaves the page
	b.waitUntil("the new key to leave the page", `!document.getElementById("new-key") && document.body.innerText.includes("kb-made")`)
	if keys, _ := ks.ListKeys(ctx, owner, app.App.ID, ""); len(keys) != 2 {
		t.Fatalf("keys after the keyboard create: %d", len(keys))
	}

	// Roll.
	b.tabToControl("Roll API key to-roll")
	b.press(kb.Enter)
	b.waitUntil("Roll to open", dialogOpen("roll-key"))
	b.focusStaysIn("roll-key")
	b.escapeReturnsFocus("roll-key", "Roll API key to-roll")
	b.press(kb.Enter)
	b.waitUntil("Roll to open again", dialogOpen("roll-key"))
	b.tabTo("the overlap choices", `document.querySelector('#roll-key input[name="overlap"]')`)
	b.press(kb.ArrowDown) // a radio group moves, and selects, by arrows
	b.tabToControl("Roll API Key")
	b.press(kb.Enter)
	b.waitText("API key rolled")
	b.press(kb.Escape)
	b.waitUntil("the rolled key to leave the page", `!document.getElementById("new-key")`)

	// Revoke, the agreement checked with Space.
	b.tabToControl("Revoke API key kb-made")
	b.press(kb.Enter)
	b.waitUntil("Revoke to open", dialogOpen("revoke-key"))
	b.focusStaysIn("revoke-key")
	b.escapeReturnsFocus("revoke-key", "Revoke API key kb-made")
	b.press(kb.Enter)
	b.waitUntil("Revoke to open again", dialogOpen("revoke-key"))
	b.tabTo("the agreement", `document.querySelector("#revoke-key [data-agree]")`)
	b.press(" ")
	b.tabToControl("Revoke")
	b.press(kb.Enter)
	b.waitText("Revoked API key “kb-made”.")
	for _, k := range mustKeys(t, ks, owner, app.App.ID) {
		if k.Name == "kb-made" {
			t.Errorf("kb-made is still listed after the keyboard revoke")
		}
	}
}

func mustKeys(t *testing.T, ks *keyservice.Service, c keyservice.Caller, appID string) []keyservice.Key {
	t.Helper()
	keys, err := ks.ListKeys(context.Background(), c, appID, "")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// chromedpSetSelect chooses value in the select css finds, as a user
// picking from the list does (the change event included).
func chromedpSetSelect(css, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SetValue(chromedp.CSS(css), value)
}

// TestNewDialogsByKeyboardOnly: the Users and Secrets dialogs open from
// the keyboard, hold the focus, and give it back on Escape; Reveal is
// completed by keys.
func TestNewDialogsByKeyboardOnly(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	if _, _, err := ks.CreateUser(ctx, owner, "dev@appkeys.local", keyservice.RoleMember); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.CreateSecret(ctx, owner, "DB_PASSWORD", "hunter2-value"); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, svc.URL)
	b.login(svc.OwnerToken)
	for _, tc := range []struct{ path, opener, dialog string }{
		{"/users", "Add User", "add-user"},
		{"/users", "Remove user dev@appkeys.local", "remove-user"},
		{"/secrets", "Create Secret", "new-secret"},
		{"/secrets", "Delete secret DB_PASSWORD", "delete-secret"},
		{"/secrets", "Reveal secret DB_PASSWORD", "reveal-secret"},
	} {
		b.open(tc.path)
		b.waitUntil("the page", `document.readyState === "complete"`)
		b.tabToControl(tc.opener)
		b.press(kb.Enter)
		b.waitUntil(tc.opener+" to open", dialogOpen(tc.dialog))
		b.focusStaysIn(tc.dialog)
		b.escapeReturnsFocus(tc.dialog, tc.opener)
	}
	b.press(kb.Enter) // Reveal again, from the focus Escape gave back
	b.waitUntil("Reveal to open again", dialogOpen("reveal-secret"))
	b.tabToControl("Reveal Value")
	b.press(kb.Enter)
	b.waitText("This reveal is in the audit log")
	b.focusStaysIn("secret-revealed")
	b.press(kb.Escape) // as Close: the value leaves the page
	b.waitUntil("the value to leave the page", `!document.getElementById("secret-revealed") && document.readyState === "complete"`)
	if b.hasText("hunter2-value") || eval[bool](b, `document.documentElement.outerHTML.includes("hunter2-value")`) {
		t.Errorf("the value stays in the page after Escape")
	}
}
