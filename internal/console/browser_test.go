package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/appkeys/appkeys/internal/keyservice"
)

const chromiumPath = "/usr/bin/chromium"

// stepTimeout bounds each browser step; a whole walk takes seconds.
const stepTimeout = 15 * time.Second

// tab is a headless Chromium tab driven the way a user drives the console:
// by the words on buttons and labels.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// newTab starts Debian's Chromium with a fresh profile, and any extra
// options. Without it the test skips locally but fails under CI, where a
// skip would hide that the console went untested.
func newTab(t *testing.T, base string, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser tests need Chromium at %s (apt-get install -y chromium; make test installs it): %v", chromiumPath, err)
		}
		t.Skipf("Chromium not found at %s; set CI=1 to make this a failure", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.WindowSize(1440, 900),
		// Without these Chromium keeps dialing hosts this network refuses.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	opts = append(opts, extra...)
	// On a loaded machine Chromium now and then exits before it is up
	// ("chrome failed to start"); a second try with a fresh profile is
	// what a person would do, and says nothing about the console.
	var ctx context.Context
	for attempt := 1; ; attempt++ {
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, chromedp.UserDataDir(t.TempDir()))...)
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(allocCtx)
		// The first run starts the browser; it must not carry a step
		// timeout, which would end the browser with it.
		err := chromedp.Do(ctx, chromedp.Navigate("about:blank"))
		if err == nil {
			t.Cleanup(func() { cancel(); cancelAlloc() })
			break
		}
		cancel()
		cancelAlloc()
		if attempt == 3 || !strings.Contains(err.Error(), "failed to start") {
			t.Fatalf("start Chromium (attempt %d): %v", attempt, err)
		}
		t.Logf("start Chromium (attempt %d): %v; trying again", attempt, err)
	}
	// Let the page use the clipboard, so the test reads what Copy API Key put there.
	c := chromedp.FromContext(ctx)
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := cdp.Call(ctx, c.Browser, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true}, Setting: browser.PermissionSettingGranted, Origin: base,
		})
		if err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	return &tab{t: t, ctx: ctx, base: base}
}

func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage text:\n%s", what, err, b.textNoFail())
	}
}

func eval[T any](b *tab, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func (b *tab) textNoFail() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

func (b *tab) open(path string) { b.do("open "+path, chromedp.Navigate(b.base+path)) }

// control finds, in the topmost open dialog or else the page, the visible
// button, link or label whose words (or aria-label) are label, optionally
// followed by a count such as "View API Keys 3".
func control(label string) chromedp.JSPath {
	l, _ := json.Marshal(label)
	return chromedp.JSPath(fmt.Sprintf(`(() => {
		const want = %s;
		const scope = [...document.querySelectorAll("dialog[open]")].pop() || document;
		const words = e => (e.getAttribute("aria-label") || e.textContent).replace(/\s+/g, " ").trim();
		return [...scope.querySelectorAll("button, a, label, [role=button]")].find(e =>
			!e.closest("dialog:not([open])") && (words(e) === want || new RegExp("^" + want.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + " \\d+$").test(words(e))));
	})()`, l))
}

// field finds the input a label names, in the topmost open dialog or the page.
func field(label string) chromedp.JSPath {
	l, _ := json.Marshal(label)
	return chromedp.JSPath(fmt.Sprintf(`(() => {
		const scope = [...document.querySelectorAll("dialog[open]")].pop() || document;
		const l = [...scope.querySelectorAll("label")].find(e => !e.closest("dialog:not([open])") && e.textContent.trim() === %s);
		return l ? l.control : null;
	})()`, l))
}

func (b *tab) click(label string) {
	b.t.Helper()
	b.do("click "+label, chromedp.Click(control(label)))
}

func (b *tab) fill(label, value string) {
	b.t.Helper()
	b.do("fill "+label, chromedp.Clear(field(label)), chromedp.SendKeys(field(label), value))
}

// pageHas is true when the page's visible words include text, spacing
// aside ("View API Keys 3" across a button and its count).
func pageHas(text string) string {
	q, _ := json.Marshal(text)
	return fmt.Sprintf(`!!document.body && document.body.innerText.replace(/\s+/g, " ").includes(%s)`, q)
}

// waitText waits until the page shows text, through navigations, and
// fails saying what the page shows instead.
func (b *tab) waitText(text string) {
	b.t.Helper()
	b.waitUntil(fmt.Sprintf("%q", text), pageHas(text))
}

// waitUntil waits until a JavaScript condition holds, through navigations.
func (b *tab) waitUntil(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, b.textNoFail())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (b *tab) hasText(text string) bool { return eval[bool](b, pageHas(text)) }

// screenshot saves the whole page to the test's temp dir and, when
// APPKEYS_UPDATE_SCREENSHOTS=1, to docs/ for the README. A page worth a
// screenshot is worth an accessibility check too: with axe-core installed
// (scripts/ensure-axe.sh), it runs on the page first.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	if axe, err := os.ReadFile(axePath); err == nil {
		b.accessible(string(axe), "page "+name)
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{b.t.TempDir()}
	if os.Getenv("APPKEYS_UPDATE_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join("..", "..", "docs"))
	}
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
			b.t.Fatalf("save screenshot: %v", err)
		}
	}
}

// cookies returns the browser's cookies, HttpOnly ones included.
func (b *tab) cookies() []*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := cdp.Call(ctx, chromedp.FromContext(b.ctx).Browser, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil {
		b.t.Fatalf("read the browser's cookies: %v", err)
	}
	return res.Cookies
}

// copyThenSave drives the new-key dialog's two ways out, as a user with a
// new key does: Copy API Key (the clipboard must hold plain), then Save As
// Secret into secret, which read must then find holding plain.
func copyThenSave(t *testing.T, b *tab, plain, keyName, secret string, read func() (string, error)) {
	t.Helper()
	b.click("Copy API Key")
	b.waitText("Copied to the clipboard.")
	if got := eval[string](b, `navigator.clipboard.readText()`); got != plain {
		t.Errorf("clipboard holds %q, want the new key", got)
	}
	b.click("Save As Secret")
	b.waitText("New Secret")
	b.fill("Name", secret)
	b.click("Create Secret")
	b.waitText("Saved API key “" + keyName + "” as secret “" + secret + "”.")
	if v, err := read(); err != nil || v != plain {
		t.Fatalf("secret %s = %q, %v; want the new key", secret, v, err)
	}
}

func (b *tab) login(token string) {
	b.t.Helper()
	b.open("/")
	b.waitText("Log in to appkeys")
	b.fill("User token", token)
	b.click("Log in")
	b.waitText("Container Service")
}

func (b *tab) logout() {
	b.t.Helper()
	b.click("Log out")
	b.waitText("You have logged out.")
}

func TestConsoleInTheBrowser(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	_, memberToken, err := ks.CreateUser(ctx, owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	member := ownerCaller(t, svc, memberToken)
	b := newTab(t, svc.URL)

	// Log in, and create two apps through the Create App dialog.
	b.login(svc.OwnerToken)
	b.waitText("No apps yet")
	for _, a := range []struct{ name, kind string }{{"orders-fn", "Cloud Function"}, {"sales-board", "Dashboard App"}} {
		b.click("Create App")
		b.fill("Name", a.name)
		b.click(a.kind)
		b.click("Create App")
		b.waitText(a.kind + " " + a.name + " created")
		if tok := eval[string](b, `document.getElementById("verifier-token").value`); !strings.HasPrefix(tok, "akv_") {
			t.Fatalf("the app-created dialog shows %q, not a verifier token", tok)
		}
		b.click("Close")
	}
	apps, err := ks.ListApps(ctx, owner)
	if err != nil || len(apps) != 2 {
		t.Fatalf("apps after creating two: %v %v", apps, err)
	}
	ordersID, boardID := apps[0].ID, apps[1].ID
	// A key on the other app, made by the member, so the views have more to show.
	if _, err := ks.CreateKey(ctx, member, boardID, keyservice.CreateKeyRequest{Name: "embed-widget", ExpiresAt: time.Now().AddDate(0, 0, 90)}); err != nil {
		t.Fatal(err)
	}

	// App instance → View API Keys → Create API Key.
	b.click("orders-fn")
	b.waitText("Sidecar")
	if !b.hasText("View API Keys 0") {
		t.Errorf("the app's View API Keys does not show 0 keys")
	}
	b.click("View API Keys")
	b.waitText("No active API keys yet")
	b.click("Create API Key")
	b.waitText("Create API key for Cloud Function - orders-fn")
	b.fill("API Key Name", "ci-deploy")
	b.click("90 days")
	want90 := time.Now().UTC().AddDate(0, 0, 90).Format("2006-01-02")
	if got := eval[string](b, `document.getElementById("key-expires").value`); got != want90 {
		t.Errorf("90 days set the date to %q, want %q", got, want90)
	}
	b.screenshot("create-key")
	b.click("Create API Key")
	b.waitText("API key created")
	plain := eval[string](b, `document.querySelector('[aria-label="The new API key"]').value`)
	if !strings.HasPrefix(plain, "cak_") {
		t.Fatalf("the new key dialog shows %q", plain)
	}

	copyThenSave(t, b, plain, "ci-deploy", "orders-ci-key", func() (string, error) {
		_, v, err := ks.ReadSecret(ctx, owner, "orders-ci-key")
		return v, err
	})
	if b.hasText(plain) || eval[bool](b, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, plain)) {
		t.Errorf("the key is still in the page after the flow ended")
	}

	// Under Active on the app, with its prefix and creator.
	b.waitText("ci-deploy")
	for _, want := range []string{plain[:10], "owner@appkeys.local", "orders-fn"} {
		if !b.hasText(want) {
			t.Errorf("the app's Active tab lacks %q", want)
		}
	}
	// A taken name is said in the dialog.
	b.click("Create API Key")
	b.fill("API Key Name", "ci-deploy")
	b.click("Create API Key")
	b.waitText("An API key named “ci-deploy” already exists for this app. Choose another name.")
	b.fill("API Key Name", "nightly-sync")
	b.click("30 days")
	b.click("Create API Key")
	b.waitText("API key created")
	b.click("Close")
	b.waitUntil("the new key dialog to go", `!document.getElementById("new-key")`)
	b.waitText("nightly-sync")

	// On the Container Service: the total on the button, the key under Active.
	b.click("Container Service")
	b.waitText("View API Keys 3")
	b.screenshot("service")
	b.click("View API Keys")
	b.waitText("embed-widget")
	for _, want := range []string{"ci-deploy", "nightly-sync", "dev@appkeys.local", "sales-board"} {
		if !b.hasText(want) {
			t.Errorf("the service's Active tab lacks %q", want)
		}
	}
	b.screenshot("keys")

	// Revoke through the agreement.
	b.click("Revoke API key ci-deploy")
	b.waitText("I understand that this key stops working now")
	if !eval[bool](b, `document.querySelector("#revoke-key [data-needs-agree]").disabled`) {
		t.Fatalf("Revoke is enabled before the agreement is checked")
	}
	b.click("I understand that this key stops working now and cannot be restored.")
	if eval[bool](b, `document.querySelector("#revoke-key [data-needs-agree]").disabled`) {
		t.Fatalf("Revoke stays disabled after the agreement is checked")
	}
	b.click("Revoke")
	b.waitText("Revoked API key “ci-deploy”.")
	if b.hasText(plain[:10]) {
		t.Errorf("the revoked key is still listed")
	}
	if keys, _ := ks.ListKeys(ctx, owner, ordersID, ""); len(keys) != 1 || keys[0].Name != "nightly-sync" {
		t.Errorf("orders-fn keys after the revoke: %+v", keys)
	}

	// Delete the app: its key moves to Orphaned.
	b.click("Container Service")
	b.click("Delete app orders-fn")
	b.waitText("Its API keys stop working at once")
	b.click("Delete App")
	b.waitText("Deleted Cloud Function “orders-fn”.")
	b.click("View API Keys")
	b.click("Orphaned")
	b.waitText("App deleted")
	if !b.hasText("nightly-sync") {
		t.Fatalf("the deleted app's key is not under Orphaned")
	}

	// A member sees why not, and the server refuses even a forced form.
	b.logout()
	b.login(memberToken)
	b.click("View API Keys")
	b.click("Orphaned")
	b.waitText("Only an Organization Owner or Aura Owner can revoke orphaned keys.")
	if !eval[bool](b, `document.querySelector('[aria-label="Revoke API key nightly-sync"]').disabled`) {
		t.Errorf("a member's Revoke icon on an orphaned key is enabled")
	}
	eval[bool](b, `document.querySelector('[aria-label="Revoke API key nightly-sync"]').disabled = false`)
	b.click("Revoke API key nightly-sync")
	b.click("I understand that this key stops working now and cannot be restored.")
	b.click("Revoke")
	b.waitText("Only an Organization Owner or Aura Owner can revoke an orphaned key.")
	if keys, _ := ks.ListKeys(ctx, owner, "", keyservice.StateOrphaned); len(keys) != 1 {
		t.Fatalf("orphaned keys after the member's attempt: %d, want 1", len(keys))
	}

	// The owner can.
	b.logout()
	b.login(svc.OwnerToken)
	b.click("View API Keys")
	b.click("Orphaned")
	b.waitText("nightly-sync")
	b.click("Revoke API key nightly-sync")
	b.click("I understand that this key stops working now and cannot be restored.")
	b.click("Revoke")
	b.waitText("Revoked API key “nightly-sync”.")
	b.waitText("No orphaned API keys.")
	if keys, _ := ks.ListKeys(ctx, owner, "", keyservice.StateOrphaned); len(keys) != 0 {
		t.Errorf("orphaned keys after the owner's revoke: %d", len(keys))
	}
}
