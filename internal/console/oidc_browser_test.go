package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// TestOIDCSignInInTheBrowser drives the whole sign-in in Chromium: the
// login page's "Sign in with Mock IdP", the provider's redirect back, the
// page that moves on, and a console that knows who signed in.
func TestOIDCSignInInTheBrowser(t *testing.T) {
	p := startIDP(t)
	svc := startOIDCConsole(t, p, nil)
	b := newTab(t, svc.URL)
	b.open("/login")
	b.waitText("Sign in with Mock IdP")
	b.screenshot("login-oidc")
	p.user("owner@appkeys.local", true)
	b.click("Sign in with Mock IdP")
	b.waitText("View API Keys")
	if !b.hasText("owner@appkeys.local") {
		t.Errorf("signed in, but the console does not show who")
	}
	b.logout()
	// A second sign-in with an unknown email is refused, in words.
	p.user("stranger@appkeys.local", true)
	b.click("Sign in with Mock IdP")
	b.waitText("No appkeys user has the email stranger@appkeys.local.")
	b.accessible(loadAxe(t), "a refused sign-in")
}

// TestOIDCSignInAcrossReplicas: the sign-in starts on replica A and the
// provider's redirect lands on B; the session then works on both.
func TestOIDCSignInAcrossReplicas(t *testing.T) {
	db := pgtest.NewDatabase(t)
	master := randomMasterKey(t)
	shared := servicetest.WithConfig(func(c *keyserver.Config) { c.DatabaseURL, c.MasterKey = db, master })
	p := startIDP(t)
	a := startOIDCConsole(t, p, nil, shared)
	b := startOIDCConsole(t, p, nil, shared)
	p.user("owner@appkeys.local", true)
	br := newBrowserless(t, a.URL)
	cb := br.startSignIn()
	br.base = b.URL
	if code, _, page := br.do(http.MethodGet, cb, nil); code != http.StatusOK || !strings.Contains(page, "Signed in") {
		t.Fatalf("callback on B for a sign-in started on A = %d:\n%s", code, page)
	}
	for _, base := range []string{a.URL, b.URL} {
		br.base = base
		if code, page := br.get("/"); code != http.StatusOK || !strings.Contains(page, "owner@appkeys.local") {
			t.Errorf("GET / on %s after the sign-in = %d", base, code)
		}
	}
}
