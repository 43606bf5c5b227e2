package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// auditRecord is one record of GET /v1/audit.
type auditRecord struct {
	ID     int64  `json:"id"`
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Target string `json:"target"`
	Detail string `json:"detail"`
}

// apiGet calls the key service's API with a token and returns the raw body.
func apiGet(t *testing.T, base, path, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, res.StatusCode, raw)
	}
	return raw
}

// A console login and a logout are in the organization's audit log, under
// the user who logged in, as GET /v1/audit shows them; the records hold
// neither the token nor the cookie (nor the cookie's hash, the session's
// row id). A failed login is not: with no user to file it under, it names
// no organization whose log could hold it.
func TestConsoleLoginAndLogoutAreAudited(t *testing.T) {
	var logs servicetest.LogBuffer
	svc := startConsoleWith(t, console.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var me struct{ ID string }
	if err := json.Unmarshal(apiGet(t, svc.URL, "/v1/me", svc.OwnerToken), &me); err != nil || me.ID == "" {
		t.Fatalf("GET /v1/me: %v", err)
	}
	audit := func() ([]auditRecord, string) {
		raw := apiGet(t, svc.URL, "/v1/audit?limit=100", svc.OwnerToken)
		var out struct{ Audit []auditRecord }
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out.Audit, string(raw)
	}
	before, _ := audit()

	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	cookie := b.sessionCookieOf()
	if code, _, _ := b.post("/logout", nil); code != http.StatusSeeOther {
		t.Fatalf("logout = %d", code)
	}
	// A refused login: a token that is no one's.
	other := newBrowserless(t, svc.URL)
	other.get("/login")
	if code, _, _ := other.post("/login", url.Values{"token": {"aku_" + strings.Repeat("x", 43)}}); code != http.StatusUnauthorized {
		t.Fatalf("login with a bad token = %d, want 401", code)
	}

	recs, raw := audit()
	added := recs[:len(recs)-len(before)] // newest first
	var actions []string
	for _, a := range added {
		actions = append(actions, a.Action)
		if a.Actor != me.ID || a.Target != me.ID {
			t.Errorf("%s record: actor %q, target %q; want the user %s for both", a.Action, a.Actor, a.Target, me.ID)
		}
	}
	if got := strings.Join(actions, " "); got != "console.logout console.login" {
		t.Fatalf("audit records added by a login, a logout and a refused login: %q; want \"console.logout console.login\"", got)
	}
	sum := sha256.Sum256([]byte(cookie))
	for what, secret := range map[string]string{"the token": svc.OwnerToken, "the cookie": cookie, "the cookie's hash": hex.EncodeToString(sum[:])} {
		if strings.Contains(raw, secret) {
			t.Errorf("the audit log holds %s", what)
		}
	}
	// The refused login is in the service's log instead, without its token.
	if l := logs.String(); !strings.Contains(l, "login refused") || strings.Contains(l, strings.Repeat("x", 43)) {
		t.Errorf("the refused login's log line is missing or holds the token: %s", l)
	}
}
