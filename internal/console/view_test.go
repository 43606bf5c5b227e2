package console

import (
	"strings"
	"testing"
)

func renderPage(t *testing.T, d *pageData) string {
	t.Helper()
	var b strings.Builder
	if err := parsePages(map[string]string{})["keys"].ExecuteTemplate(&b, "layout", d); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestNewKeyDialog: the dialog shows the new key; with a sealed copy it
// offers Save As Secret, whose form carries that copy back, and without one
// (the key could not be sealed) it offers none. Close reloads the keys view
// either way: there is no server state to drop.
func TestNewKeyDialog(t *testing.T) {
	for _, tt := range []struct {
		flow, sealed string
		wantSecret   bool
	}{{"f1", "SEALED", true}, {"", "", false}} {
		d := &pageData{Title: "API keys", CSRF: "csrf", Keys: &keysView{Tab: "active",
			NewKey: &newKey{Plain: "cak_plain", Name: "ci", Flow: tt.flow, Sealed: tt.sealed, CloseURL: "/apps/app_1/keys"}}}
		page := renderPage(t, d)
		if !strings.Contains(page, `value="cak_plain"`) {
			t.Errorf("flow %q: the new key is not shown", tt.flow)
		}
		if got := strings.Contains(page, `data-open="new-secret"`); got != tt.wantSecret {
			t.Errorf("flow %q: Save As Secret offered %v, want %v", tt.flow, got, tt.wantSecret)
		}
		if got := strings.Contains(page, `action="/new-key/f1/secret"`) && strings.Contains(page, `name="new_key" value="SEALED"`); got != tt.wantSecret {
			t.Errorf("flow %q: a Save As Secret form with the sealed key %v, want %v", tt.flow, got, tt.wantSecret)
		}
		if strings.Contains(page, `/new-key//`) || strings.Contains(page, `/close"`) {
			t.Errorf("flow %q: a form posts to an empty flow or to a close endpoint", tt.flow)
		}
		if !strings.Contains(page, `<form method="get" action="/apps/app_1/keys" id="close-new-key" hidden>`) {
			t.Errorf("flow %q: Close does not reload the keys view", tt.flow)
		}
	}
}

// TestSecretRetryDialog: a Save As Secret sent back (a name taken, the
// store failing) opens the dialog again with the error and the same sealed
// key, even when the keys could not be listed, and never the key itself.
func TestSecretRetryDialog(t *testing.T) {
	for _, unlisted := range []bool{false, true} {
		d := &pageData{Title: "API keys", CSRF: "csrf", Keys: &keysView{Tab: "active", Unlisted: unlisted,
			Secret: &secretForm{Flow: "f1", Sealed: "SEALED", Name: "ci-key", Error: "The key store cannot be reached right now.", CloseURL: "/apps/app_1/keys"}}}
		page := renderPage(t, d)
		for _, want := range []string{
			`action="/new-key/f1/secret"`, `name="new_key" value="SEALED"`, `value="ci-key"`, "The key store cannot be reached right now.",
			`id="new-secret" aria-labelledby="new-secret-title" data-autoopen`, `<form method="get" action="/apps/app_1/keys" id="close-new-key" hidden>`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("unlisted %v: the retry page lacks %s", unlisted, want)
			}
		}
		if got := strings.Contains(page, "cannot be listed right now"); got != unlisted {
			t.Errorf("unlisted %v: says the keys cannot be listed: %v", unlisted, got)
		}
	}
}
