package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// axePath is the axe-core that scripts/ensure-axe.sh installs from
// tools/axe-core (pinned, lockfile checked).
var axePath = filepath.Join("..", "..", "tools", "axe-core", "node_modules", "axe-core", "axe.min.js")

// axeViolation is one rule a page breaks, as axe reports it.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

func (v axeViolation) String() string {
	return fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
}

// loadAxe reads axe-core, or fails (under CI) or skips (elsewhere) the test
// when scripts/ensure-axe.sh has not installed it.
func loadAxe(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(axePath)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the accessibility check needs axe-core (scripts/ensure-axe.sh; make test runs it): %v", err)
		}
		t.Skipf("axe-core not installed (run scripts/ensure-axe.sh): %v", err)
	}
	return string(src)
}

// axeSerious injects axe-core into the tab's page, as it is now (open
// dialogs included), runs it, and returns the serious and critical
// violations. Evaluated through the DevTools protocol, the script is not
// subject to the page's Content-Security-Policy, which allows no inline
// script.
func (b *tab) axeSerious(axe string) []axeViolation {
	b.t.Helper()
	if !eval[bool](b, `typeof window.axe === "object"`) {
		eval[bool](b, axe+"\n;true")
	}
	raw := eval[string](b, `axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({
			id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(n => n.target.join(" ")).slice(0, 5)
		}))))`)
	var out []axeViolation
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		b.t.Fatalf("read axe's answer: %v", err)
	}
	return out
}

// accessible fails the test when the page, as it is now, has a serious or
// critical violation.
func (b *tab) accessible(axe, what string) {
	b.t.Helper()
	for _, v := range b.axeSerious(axe) {
		b.t.Errorf("%s: accessibility: %s", what, v)
	}
}

// TestAxeCheckCatchesAViolation is the check's own test: a page with
// deliberate violations (an image with no text alternative, a button with
// no name, text with too little contrast) must fail it, and the same page
// fixed must pass.
func TestAxeCheckCatchesAViolation(t *testing.T) {
	axe := loadAxe(t)
	pages := map[string]string{
		"/bad": `<!doctype html><html lang="en"><head><title>bad</title></head><body><main>
			<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
			<button></button>
			<p style="color:#bbb;background:#fff">faint words</p></main></body></html>`,
		"/good": `<!doctype html><html lang="en"><head><title>good</title></head><body><main>
			<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="A dot">
			<button>Save</button>
			<p style="color:#333;background:#fff">clear words</p></main></body></html>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(pages[r.URL.Path]))
	}))
	defer srv.Close()
	b := newTab(t, srv.URL)
	b.open("/bad")
	got := map[string]bool{}
	for _, v := range b.axeSerious(axe) {
		got[v.ID] = true
	}
	for _, want := range []string{"image-alt", "button-name", "color-contrast"} {
		if !got[want] {
			t.Errorf("the check missed %s on a page that breaks it; it found %v", want, got)
		}
	}
	b.open("/good")
	if vs := b.axeSerious(axe); len(vs) != 0 {
		t.Errorf("the check fails a page without violations: %v", vs)
	}
}
