package console_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

func startConsole(t *testing.T, opts ...servicetest.Option) *servicetest.Service {
	t.Helper()
	opts = append(opts, servicetest.WithConfig(func(c *keyserver.Config) { c.Console = console.Mount }))
	return servicetest.Start(t, opts...)
}

// browserless is a user of the console through plain HTTP: a cookie jar,
// no redirects followed, so tests see each answer.
type browserless struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func newBrowserless(t *testing.T, base string) *browserless {
	jar, _ := cookiejar.New(nil)
	return &browserless{t: t, base: base, c: &http.Client{
		// Past the SQLite store's 10 s busy timeout, which one test waits out.
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// fullKeyRE matches a whole key, not the short display prefix.
var fullKeyRE = regexp.MustCompile(`cak_[0-9A-Za-z]{20,}`)

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browserless) do(method, path string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	page := html.UnescapeString(string(raw))
	if m := csrfRE.FindStringSubmatch(string(raw)); m != nil {
		b.csrf = m[1]
	}
	return resp.StatusCode, resp.Header, page
}

func (b *browserless) get(path string) (int, string) {
	code, _, page := b.do(http.MethodGet, path, nil)
	return code, page
}

// post sends a form with the session's CSRF token.
func (b *browserless) post(path string, form url.Values) (int, http.Header, string) {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	return b.do(http.MethodPost, path, form)
}

func (b *browserless) login(token string) {
	b.t.Helper()
	if code, _ := b.get("/login"); code != http.StatusOK {
		b.t.Fatalf("GET /login = %d", code)
	}
	code, h, page := b.post("/login", url.Values{"token": {token}})
	if code != http.StatusSeeOther || h.Get("Location") != "/" {
		b.t.Fatalf("login = %d to %q: %s", code, h.Get("Location"), page)
	}
	if code, _ := b.get("/"); code != http.StatusOK {
		b.t.Fatalf("GET / after login = %d", code)
	}
}

func ownerCaller(t *testing.T, svc *servicetest.Service, token string) keyservice.Caller {
	t.Helper()
	c, err := svc.Server.Service.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoginSetsAStrictSessionCookieWithoutTheToken(t *testing.T) {
	svc := startConsole(t)
	b := newBrowserless(t, svc.URL)
	b.get("/login")
	_, h, _ := b.post("/login", url.Values{"token": {svc.OwnerToken}})
	var found bool
	for _, line := range h.Values("Set-Cookie") {
		if !strings.HasPrefix(line, "appkeys_session=") {
			continue
		}
		found = true
		for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(line, want) {
				t.Errorf("session cookie %q lacks %s", line, want)
			}
		}
		if strings.Contains(line, "Secure") {
			t.Errorf("session cookie over plain HTTP is Secure (a browser would drop it): %q", line)
		}
		if strings.Contains(line, svc.OwnerToken) {
			t.Errorf("the session cookie carries the user's token")
		}
	}
	if !found {
		t.Fatalf("no session cookie in %q", h.Values("Set-Cookie"))
	}
	if _, page := b.get("/"); !strings.Contains(page, "owner@appkeys.local") || !strings.Contains(page, "Organization Owner") {
		t.Errorf("home does not name the logged-in owner")
	}
	if h := b.mustHeader("/"); !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("Cache-Control") != "no-store" {
		t.Errorf("page headers: CSP %q, Cache-Control %q", h.Get("Content-Security-Policy"), h.Get("Cache-Control"))
	}
}

func (b *browserless) mustHeader(path string) http.Header {
	_, h, _ := b.do(http.MethodGet, path, nil)
	return h
}

func TestLoginRefusesBadTokensAndForgedForms(t *testing.T) {
	svc := startConsole(t)
	b := newBrowserless(t, svc.URL)
	b.get("/login")
	if code, _, page := b.post("/login", url.Values{"token": {"aku_not-a-real-token-at-all-xxxxxxxx"}}); code != http.StatusUnauthorized || !strings.Contains(page, "That token was not accepted") {
		t.Errorf("bad token: %d %s", code, page)
	}
	if code, _, page := b.post("/login", url.Values{"token": {svc.AdminToken}}); code != http.StatusUnauthorized || !strings.Contains(page, "not a user token") {
		t.Errorf("admin token: %d %s", code, page)
	}
	// A login form posted from elsewhere lacks the double-submit cookie.
	other := newBrowserless(t, svc.URL)
	if code, _, _ := other.do(http.MethodPost, "/login", url.Values{"token": {svc.OwnerToken}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("login without the form's cookie = %d, want 403", code)
	}
}

func TestPostWithoutCSRFTokenIsRefused(t *testing.T) {
	svc := startConsole(t)
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	for _, csrf := range []string{"", "wrong", b.csrf + "x"} {
		code, _, page := b.do(http.MethodPost, "/apps", url.Values{"name": {"sneaky"}, "kind": {"cloud_function"}, "csrf": {csrf}})
		if code != http.StatusForbidden || !strings.Contains(page, "did not come from your console session") {
			t.Errorf("POST /apps with csrf %q = %d, want 403 with an explanation", csrf, code)
		}
	}
	if code, _, _ := b.do(http.MethodPost, "/logout", url.Values{}); code != http.StatusForbidden {
		t.Errorf("logout without csrf = %d, want 403", code)
	}
	apps, err := svc.Server.Service.ListApps(context.Background(), ownerCaller(t, svc, svc.OwnerToken))
	if err != nil || len(apps) != 0 {
		t.Fatalf("apps after refused posts: %v %v", apps, err)
	}
	// With the token the same form works.
	if code, _, page := b.post("/apps", url.Values{"name": {"fine"}, "kind": {"cloud_function"}}); code != http.StatusCreated || !strings.Contains(page, "akv_") {
		t.Fatalf("POST /apps with csrf = %d", code)
	}
}

func TestSessionOfOneOrganizationShowsNothingOfAnother(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	ks := svc.Server.Service
	admin := ownerCaller(t, svc, svc.AdminToken)
	other, err := ks.CreateOrg(ctx, admin, "Other Corp", "boss@other.example")
	if err != nil {
		t.Fatal(err)
	}
	them := ownerCaller(t, svc, other.OwnerToken)
	app, err := ks.CreateApp(ctx, them, "their-secret-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ks.CreateKey(ctx, them, app.App.ID, keyservice.CreateKeyRequest{Name: "their-key", ExpiresAt: time.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	for _, path := range []string{"/", "/keys", "/keys?tab=orphaned"} {
		code, page := b.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, code)
		}
		for _, leak := range []string{"their-secret-fn", "their-key", app.App.ID, key.Key.Prefix, "Other Corp", "boss@other.example"} {
			if strings.Contains(page, leak) {
				t.Errorf("GET %s shows %q of another organization", path, leak)
			}
		}
	}
	for _, path := range []string{"/apps/" + app.App.ID, "/apps/" + app.App.ID + "/keys"} {
		if code, page := b.get(path); code != http.StatusNotFound || strings.Contains(page, "their-secret-fn") {
			t.Errorf("GET %s = %d, want 404 without the app's name", path, code)
		}
	}
	if code, _, _ := b.post("/keys/"+key.Key.ID+"/revoke", url.Values{"agree": {"yes"}}); code != http.StatusNotFound {
		t.Errorf("revoking another organization's key = %d, want 404", code)
	}
	if code, _, _ := b.post("/apps/"+app.App.ID+"/delete", nil); code != http.StatusNotFound {
		t.Errorf("deleting another organization's app = %d, want 404", code)
	}
	if code, _, _ := b.post("/apps/"+app.App.ID+"/keys", url.Values{"name": {"x"}, "expires": {time.Now().AddDate(0, 0, 30).Format("2006-01-02")}}); code != http.StatusNotFound {
		t.Errorf("creating a key on another organization's app = %d, want 404", code)
	}
	if keys, err := ks.ListKeys(ctx, them, "", keyservice.StateActive); err != nil || len(keys) != 1 {
		t.Errorf("their keys after our attempts: %d, %v", len(keys), err)
	}
}

func TestExpiredSessionGoesBackToLoginWithAMessage(t *testing.T) {
	clk := servicetest.NewClock(time.Now())
	svc := startConsole(t, servicetest.WithClock(clk))
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	clk.Add(9 * time.Hour)
	code, h, _ := b.do(http.MethodGet, "/", nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/login?m=expired" {
		t.Fatalf("GET / with an expired session = %d to %q", code, h.Get("Location"))
	}
	if _, page := b.get("/login?m=expired"); !strings.Contains(page, "Your session has expired. Log in again.") {
		t.Errorf("login page does not say the session expired")
	}
	// A form posted with the dead session does not act either.
	if code, h, _ := b.post("/apps", url.Values{"name": {"late"}, "kind": {"cloud_function"}}); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("POST with an expired session = %d to %q", code, h.Get("Location"))
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	svc := startConsole(t)
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	cookies := b.c.Jar.Cookies(mustURL(t, svc.URL))
	if code, h, _ := b.post("/logout", nil); code != http.StatusSeeOther || h.Get("Location") != "/login?m=out" {
		t.Fatalf("logout = %d to %q", code, h.Get("Location"))
	}
	// Replaying the old cookie must not work: the session is gone server-side.
	replay := newBrowserless(t, svc.URL)
	replay.c.Jar.SetCookies(mustURL(t, svc.URL), cookies)
	if code, _ := replay.get("/"); code != http.StatusSeeOther {
		t.Errorf("old session cookie after logout = %d, want a redirect to login", code)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestFormErrorsAreSaidInWords(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := svc.Server.Service.CreateApp(ctx, owner, "billing", keyservice.KindDashboardApp)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	day := func(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format("2006-01-02") }
	path := "/apps/" + app.App.ID + "/keys"
	if code, _, page := b.post(path, url.Values{"name": {"first"}, "expires": {day(30)}}); code != http.StatusCreated || !fullKeyRE.MatchString(page) {
		t.Fatalf("create key = %d", code)
	}
	cases := []struct {
		name, expires string
		status        int
		says          string
	}{
		{"first", day(30), http.StatusConflict, "An API key named “first” already exists for this app. Choose another name."},
		{"past", day(-1), http.StatusUnprocessableEntity, "The expiration date must be after today."},
		{"today", day(0), http.StatusUnprocessableEntity, "The expiration date must be after today."},
		{"far", day(400), http.StatusUnprocessableEntity, "The expiration date may be at most 365 days from now."},
		{"", day(30), http.StatusUnprocessableEntity, "Name is required."},
		{"nodate", "", http.StatusUnprocessableEntity, "Choose an expiration date."},
	}
	for _, tc := range cases {
		code, _, page := b.post(path, url.Values{"name": {tc.name}, "expires": {tc.expires}})
		if code != tc.status || !strings.Contains(page, tc.says) {
			t.Errorf("create %q expiring %q = %d, want %d saying %q", tc.name, tc.expires, code, tc.status, tc.says)
		}
		if fullKeyRE.MatchString(page) {
			t.Errorf("an error page shows a key")
		}
	}
	if code, _, page := b.post("/apps", url.Values{"name": {"billing"}, "kind": {"cloud_function"}}); code != http.StatusConflict || !strings.Contains(page, "An app named “billing” already exists") {
		t.Errorf("duplicate app = %d", code)
	}
}

// Save As Secret saves the key the page carries, says a taken name in the
// dialog (with the form again, never the key), and a form replayed within
// its time can only save the same key again under another name.
func TestSaveAsSecretSavesTheKeyThePageCarries(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	owner := ownerCaller(t, svc, svc.OwnerToken)
	ks := svc.Server.Service
	app, err := ks.CreateApp(ctx, owner, "api", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.CreateSecret(ctx, owner, "taken", "x"); err != nil {
		t.Fatal(err)
	}
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	made := b.createKeyPage(app.App.ID, "k")
	if strings.Contains(made.sealed, made.plain[4:]) {
		t.Fatalf("the sealed field shows the key")
	}
	// A taken name is said, and the form comes back with the same sealed
	// key, not the key.
	code, _, page := b.saveAsSecret(made, "taken")
	if code != http.StatusConflict || !strings.Contains(page, "A secret named “taken” already exists") || strings.Contains(page, made.plain) {
		t.Fatalf("taken secret name = %d", code)
	}
	if m := sealedRE.FindStringSubmatch(page); m == nil || m[1] != made.sealed || !strings.Contains(page, "/new-key/"+made.flow+"/secret") {
		t.Fatalf("the dialog sent back lacks the same sealed key and flow")
	}
	if code, h, _ := b.saveAsSecret(made, "api-key"); code != http.StatusSeeOther || h.Get("Location") != "/apps/"+app.App.ID+"/keys" {
		t.Fatalf("save as secret = %d to %q", code, h.Get("Location"))
	}
	if _, v, err := ks.ReadSecret(ctx, owner, "api-key"); err != nil || v != made.plain {
		t.Fatalf("secret api-key holds %q, %v; want the new key", v, err)
	}
	if _, page := b.get("/apps/" + app.App.ID + "/keys"); strings.Contains(page, made.plain) || strings.Contains(page, made.sealed) ||
		!strings.Contains(page, "Saved API key “k” as secret “api-key”.") {
		t.Errorf("the keys view after saving shows the key or its seal again, or no notice")
	}
	// The replay the design accepts: the same key, once more.
	if code, _, _ := b.saveAsSecret(made, "api-key"); code != http.StatusConflict {
		t.Errorf("the same form replayed under the same name = %d, want 409", code)
	}
	if code, _, _ := b.saveAsSecret(made, "api-key-2"); code != http.StatusSeeOther {
		t.Errorf("the same form replayed under another name = %d, want 303", code)
	}
	if _, v, err := ks.ReadSecret(ctx, owner, "api-key-2"); err != nil || v != made.plain {
		t.Errorf("the replayed save holds %q, %v; want the same key", v, err)
	}
}

func TestExpiredKeysStayUnderActiveMarkedExpired(t *testing.T) {
	clk := servicetest.NewClock(time.Now())
	svc := startConsole(t, servicetest.WithClock(clk))
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := ks.CreateApp(ctx, owner, "short-lived", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.CreateKey(ctx, owner, app.App.ID, keyservice.CreateKeyRequest{Name: "old-key", ExpiresAt: clk.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	clk.Add(48 * time.Hour)
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	_, page := b.get("/keys")
	if !regexp.MustCompile(`old-key[\s\S]*Expired`).MatchString(page) {
		t.Errorf("the Active tab does not list old-key as Expired")
	}
	if _, page := b.get("/keys?tab=orphaned"); strings.Contains(page, "old-key") {
		t.Errorf("an expired key is listed under Orphaned")
	}
}
