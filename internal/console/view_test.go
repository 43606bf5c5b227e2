package console

import (
	"strings"
	"testing"
)

// TestNewKeyDialogWithoutSaveAsSecret: when the new key could not be held
// for Save As Secret (no flow), the dialog still shows the key but offers
// no Save As Secret that would fail, and Close needs no flow either.
func TestNewKeyDialogWithoutSaveAsSecret(t *testing.T) {
	pages := parsePages(map[string]string{})
	for _, tt := range []struct {
		flow       string
		wantSecret bool
	}{{"f1", true}, {"", false}} {
		d := &pageData{Title: "API keys", CSRF: "csrf", Keys: &keysView{Tab: "active", NewKey: &newKey{Plain: "cak_plain", Name: "ci", Flow: tt.flow}}}
		var b strings.Builder
		if err := pages["keys"].ExecuteTemplate(&b, "layout", d); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		if !strings.Contains(page, `value="cak_plain"`) {
			t.Errorf("flow %q: the new key is not shown", tt.flow)
		}
		if got := strings.Contains(page, `data-open="new-secret"`); got != tt.wantSecret {
			t.Errorf("flow %q: Save As Secret offered %v, want %v", tt.flow, got, tt.wantSecret)
		}
		if strings.Contains(page, `/new-key//`) {
			t.Errorf("flow %q: a form posts to an empty flow", tt.flow)
		}
		if !strings.Contains(page, `id="close-new-key"`) {
			t.Errorf("flow %q: no Close form", tt.flow)
		}
	}
}
