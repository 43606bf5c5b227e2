package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"
)

// Edit limits in the browser, by keyboard alone: Tab to the button, Enter
// opens the dialog with the focus held inside, Escape gives it back; then
// the limits typed reach the key, its page shows them, and its History
// names the change and who made it, above the key's creation.
func TestEditKeyLimitsInTheBrowser(t *testing.T) {
	w := newUsageWorld(t)
	ctx := context.Background()
	ks := w.svc.Server.Service
	b := newTab(t, w.svc.URL)
	b.login(w.svc.OwnerToken)
	b.open("/keys/" + w.used.ID)
	b.waitText("Requests, last 24 hours")
	b.waitText("History")
	b.tabToControl("Edit limits")
	b.press(kb.Enter)
	b.waitUntil("Edit limits to open", dialogOpen("edit-limits"))
	b.focusStaysIn("edit-limits")
	b.escapeReturnsFocus("edit-limits", "Edit limits")

	b.press(kb.Enter)
	b.waitUntil("Edit limits to open again", dialogOpen("edit-limits"))
	b.fill("Rate limit", "20")
	b.do("choose per minute", chromedpSetSelect("#edit-rate-per", "1m"))
	b.fill("Allowed networks", "10.0.0.0/8, 192.168.1.7")
	b.tabToControl("Save limits")
	b.press(kb.Enter)
	b.waitText("Changed the limits of API key “busy-key”.")
	if got := eval[string](b, `document.getElementById("key-limits").innerText`); got != "20 per minute · from 10.0.0.0/8, 192.168.1.7/32" {
		t.Errorf("the page shows the limits %q", got)
	}
	first := eval[string](b, `document.querySelector("#key-history tr.history-entry").innerText`)
	if !strings.Contains(first, "Limits changed") || !strings.Contains(first, "owner@appkeys.local") || !strings.Contains(first, "now rate_limit 20/1m") {
		t.Errorf("the newest history entry reads %q", first)
	}
	last := eval[string](b, `[...document.querySelectorAll("#key-history tr.history-entry")].pop().innerText`)
	if !strings.Contains(last, "Created") {
		t.Errorf("the oldest history entry reads %q", last)
	}
	k, err := ks.GetKey(ctx, w.owner, w.used.ID)
	if err != nil || k.Limits.RateLimit == nil || k.Limits.RateLimit.Requests != 20 || k.Limits.RateLimit.Per != time.Minute || len(k.Limits.AllowedCIDRs) != 2 {
		t.Fatalf("the key's limits: %+v, %v", k.Limits, err)
	}
	b.screenshot("key-page")
	// The link to the whole history opens the Audit log filtered for it.
	b.click("In the Audit log")
	b.waitText("Entries about key")
	if n := eval[int](b, `document.querySelectorAll("table.audit tbody tr").length`); n < 2 {
		t.Errorf("the audit log filtered for the key holds %d entries", n)
	}
}
