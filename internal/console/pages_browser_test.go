package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// TestEveryPageInTheBrowser walks every page of the console, and every
// dialog open in turn, by the words on its controls, as an owner and as a
// member: Users (add, change a role, remove with the orphan count),
// Secrets (create, reveal behind its confirmation, copy, delete, a Save
// As Secret secret naming its key), the Audit log's filters and pages, a
// key's page with its chart, history and Edit limits dialog;
// and on each page axe-core finds no serious or critical violation.
func TestEveryPageInTheBrowser(t *testing.T) {
	axe := loadAxe(t)
	svc := startConsole(t)
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := ks.CreateApp(ctx, owner, "orders-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.CreateApp(ctx, owner, "sales-board", keyservice.KindDashboardApp); err != nil {
		t.Fatal(err)
	}
	_, memberToken, err := ks.CreateUser(ctx, owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	member := ownerCaller(t, svc, memberToken)
	for _, name := range []string{"ci-deploy", "nightly-sync"} {
		if _, err := ks.CreateKey(ctx, member, app.App.ID, keyservice.CreateKeyRequest{Name: name, ExpiresAt: time.Now().AddDate(0, 0, 30)}); err != nil {
			t.Fatal(err)
		}
	}
	saved, err := ks.CreateKey(ctx, owner, app.App.ID, keyservice.CreateKeyRequest{Name: "embed-widget", ExpiresAt: time.Now().AddDate(0, 0, 90), SaveAsSecret: "WIDGET_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	b := newTab(t, svc.URL)
	check := func(what string) { t.Helper(); b.accessible(axe, what) }
	openDialog := func(opener, title, what string) {
		t.Helper()
		b.click(opener)
		b.waitText(title)
		check(what)
		b.press("\x1b") // Escape
	}

	b.open("/login")
	b.waitText("Log in to appkeys")
	check("login")
	b.login(svc.OwnerToken)
	check("Container Service")
	openDialog("Create App", "Kind", "Create App dialog")
	openDialog("Delete app orders-fn", "Its API keys stop working at once", "Delete app dialog")
	b.open("/apps/" + app.App.ID)
	b.waitText("Sidecar")
	check("App instance")
	b.open("/apps/" + app.App.ID + "/keys")
	b.waitText("ci-deploy")
	check("API keys")
	openDialog("Create API Key", "API Key Name", "Create API Key dialog")
	openDialog("Revoke API key ci-deploy", "I understand", "Revoke dialog")
	openDialog("Roll API key ci-deploy", "Old key keeps working for", "Roll dialog")
	b.click("Create API Key")
	b.fill("API Key Name", "a11y-key")
	b.click("Create API Key")
	b.waitText("API key created")
	check("new key dialog")
	b.click("Close")
	b.waitUntil("the new key dialog to go", `!document.getElementById("new-key")`)
	// A key's page: its fields, its chart, its history (created and saved
	// as a secret) and the Edit limits dialog.
	b.open("/keys/" + saved.Key.ID)
	b.waitText("saved as secret WIDGET_KEY")
	b.waitUntil("the chart", `!!document.getElementById("usage-chart")`)
	check("key page")
	openDialog("Edit limits", "Save limits", "Edit limits dialog")
	b.open("/keys?tab=orphaned")
	b.waitText("No orphaned API keys")
	check("Orphaned tab")
	b.open("/apps/app_nope")
	b.waitText("Back to the Container Service")
	check("error page")

	// Users.
	b.click("Users")
	b.waitText("dev@appkeys.local")
	check("Users")
	b.click("Add User")
	b.fill("Email", "ops@appkeys.local")
	b.click("Aura Owner")
	check("Add User dialog")
	b.click("Add User")
	b.waitText("ops@appkeys.local added as Aura Owner")
	if tok := eval[string](b, `document.getElementById("user-token").value`); !strings.HasPrefix(tok, "aku_") {
		t.Errorf("the new user's dialog shows %q, not a user token", tok)
	}
	check("user added dialog")
	b.click("Close")
	b.do("choose a role", chromedpSetSelect("#role-"+userIDOf(t, ks, owner, "ops@appkeys.local"), "member"))
	b.click("Change Role of ops@appkeys.local")
	b.waitText("ops@appkeys.local is now a Member.")
	b.screenshot("users")
	b.click("Remove user dev@appkeys.local")
	b.waitText("2 API keys they created will become orphaned")
	check("Remove user dialog")
	b.click("Remove User")
	b.waitText("Removed dev@appkeys.local. Their 2 API keys are now under Orphaned")
	check("Users after a removal")

	// Secrets.
	b.click("Secrets")
	b.waitText("WIDGET_KEY")
	if !b.hasText("API key embed-widget") {
		t.Errorf("the Save As Secret secret does not say which key it holds")
	}
	if got := eval[string](b, `document.querySelector('#secret-WIDGET_KEY a').getAttribute("href")`); got != "/keys/"+saved.Key.ID {
		t.Errorf("the secret links its key to %q", got)
	}
	check("Secrets")
	b.click("Create Secret")
	b.fill("Name", "DB_PASSWORD")
	b.fill("Value", "hunter2-value")
	check("New Secret dialog")
	b.click("Create Secret")
	b.waitText("Created secret “DB_PASSWORD”.")
	if b.hasText("hunter2-value") {
		t.Fatalf("the Secrets page shows a value nobody revealed")
	}
	b.click("Reveal secret DB_PASSWORD")
	b.waitText("Revealing it is recorded in the audit log")
	check("Reveal dialog")
	b.click("Reveal Value")
	b.waitText("This reveal is in the audit log")
	if got := eval[string](b, `document.getElementById("secret-revealed-value").value`); got != "hunter2-value" {
		t.Errorf("the revealed value = %q", got)
	}
	b.click("Copy Value")
	b.waitText("Copied to the clipboard.")
	if got := eval[string](b, `navigator.clipboard.readText()`); got != "hunter2-value" {
		t.Errorf("the clipboard holds %q", got)
	}
	check("revealed secret dialog")
	b.click("Close")
	b.waitUntil("the value to leave the page", `!document.getElementById("secret-revealed")`)
	b.screenshot("secrets")
	b.click("Delete secret DB_PASSWORD")
	b.waitText("Its value is gone for good")
	check("Delete secret dialog")
	b.click("Delete Secret")
	b.waitText("Deleted secret “DB_PASSWORD”.")

	// Audit log: newest first, filtered by the labels of the filter bar.
	b.click("Audit log")
	b.waitText("secret.delete")
	check("Audit log")
	b.screenshot("audit")
	b.do("choose an action", chromedpSetSelect("#f-action", "secret.read"))
	b.click("Apply Filters")
	b.waitUntil("the filtered log", `location.search.includes("action=secret.read") && document.readyState === "complete" && !!document.querySelector("table.audit tbody")`)
	rows := eval[int](b, `document.querySelectorAll("table.audit tbody tr").length`)
	if rows != 1 || !b.hasText("DB_PASSWORD") {
		t.Errorf("action filter secret.read: %d rows", rows)
	}
	b.do("choose an app", chromedpSetSelect("#f-action", ""), chromedpSetSelect("#f-app", app.App.ID))
	b.click("Apply Filters")
	b.waitUntil("the app's log", `location.search.includes("app=`+app.App.ID+`") && document.readyState === "complete" && !!document.querySelector("table.audit tbody")`)
	entries := eval[string](b, `document.querySelector("table.audit tbody").innerText`)
	if !strings.Contains(entries, "key.create") || strings.Contains(entries, "secret.read") || strings.Contains(entries, "user.create") {
		t.Errorf("the app filter shows the wrong entries")
	}
	check("filtered Audit log")
	b.click("Clear")
	b.waitUntil("the whole log", `location.search === "" && document.readyState === "complete"`)

	// A member: the list without controls, the audit log refused in words.
	b.logout()
	b.login(mustToken(t, ks, owner, "member2@appkeys.local"))
	b.click("Users")
	b.waitText("ops@appkeys.local")
	if b.hasText("Add User") || eval[int](b, `document.querySelectorAll("select, [data-open=remove-user]").length`) != 0 {
		t.Errorf("a member sees the Users controls")
	}
	check("Users as a member")
	b.open("/keys/" + saved.Key.ID)
	b.waitText("Only an Organization Owner or Aura Owner can see the history of a key someone else created.")
	check("key page as a member")
	b.click("Audit log")
	b.waitText("Only an Organization Owner or Aura Owner can read the audit log.")
	check("Audit log refused")
}

func mustToken(t *testing.T, ks *keyservice.Service, c keyservice.Caller, email string) string {
	t.Helper()
	_, tok, err := ks.CreateUser(context.Background(), c, email, keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
