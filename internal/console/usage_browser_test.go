package console_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The browser opens the key lists, follows the busy key's Requests (24h)
// count to its page, and finds the chart's points: 24 bars, the newest
// holding the report, a tooltip in words, a legend and the accessible
// name; the 7 days toggle draws 168 bars; the numbers table opens.
func TestKeyUsageChartInTheBrowser(t *testing.T) {
	w := newUsageWorld(t)
	b := newTab(t, w.svc.URL)
	b.login(w.svc.OwnerToken)
	b.open("/keys")
	b.waitText("busy-key")
	if row := b.rowText("busy-key"); !strings.Contains(row, "1,297") {
		t.Fatalf("busy-key's row reads %q; want 1,297 requests", row)
	}
	b.click("1297 requests in 24 hours: see the chart of busy-key")
	b.waitText("Requests, last 24 hours")

	type bar struct {
		Allowed, Limited int
		Title            string
		Height           float64
	}
	bars := func() []bar {
		return eval[[]bar](b, `[...document.querySelectorAll("#usage-chart g.bar")].map(g => ({
			Allowed: +g.dataset.allowed, Limited: +g.dataset.limited,
			Title: g.querySelector("title").textContent,
			Height: [...g.querySelectorAll("rect")].reduce((h, r) => h + r.getBBox().height, 0)}))`)
	}
	got := bars()
	if len(got) < 24 || len(got) > 25 {
		t.Fatalf("%d bars in 24 hours", len(got))
	}
	last := got[len(got)-1]
	if last.Allowed != 1234 || last.Limited != 63 || !strings.Contains(last.Title, "1234 allowed, 63 limited") || last.Height < 95 {
		t.Fatalf("the newest bar: %+v; want the peak drawn over half the plot's height (190)", last)
	}
	for _, g := range got[:len(got)-1] {
		if g.Allowed != 0 || g.Height != 0 {
			t.Fatalf("an hour without requests drawn as %+v", g)
		}
	}
	name := eval[string](b, `(() => { const s = document.getElementById("usage-chart");
		return s.getAttribute("aria-labelledby").split(" ").map(id => document.getElementById(id).textContent).join(" "); })()`)
	if !strings.Contains(name, "Requests per hour") || !strings.Contains(name, "1,234 allowed and 63 limited") {
		t.Errorf("the chart's accessible name and description: %q", name)
	}
	if n := eval[int](b, `document.querySelectorAll("#usage-chart text.x-label").length`); n < 7 {
		t.Errorf("%d hour labels on the x axis", n)
	}
	b.screenshot("key-usage")

	b.click("7 days")
	b.waitText("Requests, last 7 days")
	if n := len(bars()); n < 7*24 || n > 7*24+1 {
		t.Fatalf("%d bars in 7 days", n)
	}
	b.do("open the numbers", chromedp.Click(chromedp.CSS("details.usage-table summary")))
	b.waitUntil("the numbers table", `[...document.querySelectorAll("details.usage-table td")].some(td => td.textContent === "1,234" && td.offsetParent !== null)`)
}
