package console_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// consoleWithApp is a console with an app, a settable clock, and a browser
// logged in as the owner.
func consoleWithApp(t *testing.T, opts ...servicetest.Option) (*servicetest.Service, *browserless, string, *servicetest.Clock) {
	t.Helper()
	clk := servicetest.NewClock(time.Now())
	opts = append(opts, servicetest.WithClock(clk))
	svc := startConsole(t, opts...)
	app, err := svc.Server.Service.CreateApp(context.Background(), ownerCaller(t, svc, svc.OwnerToken), "api", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	return svc, b, app.App.ID, clk
}

func secretNames(t *testing.T, svc *servicetest.Service) []string {
	t.Helper()
	secs, err := svc.Server.Service.ListSecrets(context.Background(), ownerCaller(t, svc, svc.OwnerToken))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		names = append(names, s.Name)
	}
	return names
}

// A Save As Secret form carries a key sealed for its session and flow: the
// same form posted by another session, or for another flow, is refused.
func TestSealedKeyOfAnotherSessionIsRefused(t *testing.T) {
	svc, a, appID, _ := consoleWithApp(t)
	made := a.createKeyPage(appID, "a-key")
	// Session B: the same owner in another browser, and a member.
	_, memberToken, err := svc.Server.Service.CreateUser(context.Background(), ownerCaller(t, svc, svc.OwnerToken), "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{svc.OwnerToken, memberToken} {
		b := newBrowserless(t, svc.URL)
		b.login(token)
		code, _, page := b.saveAsSecret(made, "stolen")
		if code != http.StatusForbidden || !strings.Contains(page, "This Save As Secret form was not made for this console session and this new key, or it was altered; it was refused.") {
			t.Errorf("session A's form posted by another session = %d, want 403 saying why", code)
		}
		if strings.Contains(page, made.plain) {
			t.Errorf("the refusal shows the key")
		}
	}
	// Session A, another flow: refused too.
	other := a.createKeyPage(appID, "other-key")
	if code, _, _ := a.saveAsSecret(newKeyPage{flow: other.flow, sealed: made.sealed}, "swapped"); code != http.StatusForbidden {
		t.Errorf("a sealed key posted under another flow = %d, want 403", code)
	}
	if names := secretNames(t, svc); len(names) != 0 {
		t.Fatalf("secrets after refused forms: %v", names)
	}
	// The right session and flow still work.
	if code, _, _ := a.saveAsSecret(made, "mine"); code != http.StatusSeeOther {
		t.Fatalf("session A's own form = %d", code)
	}
}

// A sealed key that was altered, is missing, or is past its five minutes
// is refused with a message that says so.
func TestTamperedOrExpiredSealedKeyIsRefused(t *testing.T) {
	svc, b, appID, clk := consoleWithApp(t)
	made := b.createKeyPage(appID, "k")
	raw, err := base64.RawURLEncoding.DecodeString(made.sealed)
	if err != nil {
		t.Fatal(err)
	}
	alter := func(i int) string {
		c := append([]byte{}, raw...)
		c[i] ^= 0x20
		return base64.RawURLEncoding.EncodeToString(c)
	}
	for _, tc := range []struct {
		what, sealed string
		code         int
		says         string
	}{
		{"an altered ciphertext", alter(len(raw) - 20), http.StatusForbidden, "or it was altered; it was refused."},
		{"an altered expiry", alter(5), http.StatusForbidden, "or it was altered; it was refused."},
		{"another value", base64.RawURLEncoding.EncodeToString([]byte("cak_" + strings.Repeat("x", 60))), http.StatusForbidden, "or it was altered; it was refused."},
		{"none", "", http.StatusBadRequest, "The Save As Secret form lacks the new key; reload the page."},
	} {
		code, _, page := b.saveAsSecret(newKeyPage{flow: made.flow, sealed: tc.sealed}, "x")
		if code != tc.code || !strings.Contains(page, tc.says) {
			t.Errorf("%s = %d, want %d saying %q", tc.what, code, tc.code, tc.says)
		}
	}

	clk.Add(keyservice.NewKeySaveWindow)
	code, _, page := b.saveAsSecret(made, "late")
	if code != http.StatusGone || !strings.Contains(page, "The new API key can no longer be saved as a secret: that is possible for 5 minutes after it is created. Create another key to save it as a secret.") {
		t.Errorf("a sealed key past its five minutes = %d, want 410 saying so", code)
	}
	if strings.Contains(page, made.plain) || strings.Contains(page, made.sealed) {
		t.Errorf("the refusal shows the key or its seal")
	}
	if names := secretNames(t, svc); len(names) != 0 {
		t.Fatalf("secrets after refused forms: %v", names)
	}
}

// A Save As Secret whose create fails (the store refusing, or failing in a
// way nobody classified) sends the dialog back with the same sealed key;
// posted again once the store is well, it saves the key.
func TestSaveAsSecretRetryAfterAFailedCreate(t *testing.T) {
	var opts []servicetest.Option
	pg := os.Getenv(servicetest.EnvStore) == "postgres"
	var pgURL string
	if pg {
		pgURL = pgtest.NewDatabase(t)
		opts = append(opts, servicetest.WithDatabase(pgURL))
	}
	svc, b, appID, _ := consoleWithApp(t, opts...)
	raw := func() *sql.DB {
		// The service writes in the background too (usage pruning, the
		// webhook queue): wait for its lock as the store itself does.
		driver, dsn := "sqlite", "file:"+filepath.Join(svc.DataDir, "appkeys.db")+"?_pragma=busy_timeout(5000)"
		if pg {
			driver, dsn = "pgx", pgURL
		}
		db, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}()
	// failSecrets makes every insert into secrets fail with msg (SQLite)
	// or code (PostgreSQL, where 53300 is an outage to the store).
	failSecrets := func(msg, code string) {
		t.Helper()
		qs := []string{`DROP TRIGGER IF EXISTS fail_secrets`,
			`CREATE TRIGGER fail_secrets BEFORE INSERT ON secrets BEGIN SELECT RAISE(ABORT, '` + msg + `'); END`}
		if pg {
			qs = []string{`DROP TRIGGER IF EXISTS fail_secrets ON secrets`,
				`CREATE OR REPLACE FUNCTION fail_secrets() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '` + msg + `' USING ERRCODE = '` + code + `'; END $$`,
				`CREATE TRIGGER fail_secrets BEFORE INSERT ON secrets FOR EACH ROW EXECUTE FUNCTION fail_secrets()`}
		}
		for _, q := range qs {
			if _, err := raw.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	heal := func() {
		t.Helper()
		q := `DROP TRIGGER fail_secrets`
		if pg {
			q += ` ON secrets`
		}
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}

	made := b.createKeyPage(appID, "k")
	form := made
	for _, tc := range []struct {
		what, msg, code string
		status          int
		says            string
	}{
		{"the store unavailable", "database is locked (injected)", "53300", http.StatusServiceUnavailable, "The key store cannot be reached right now, so the secret was not created. Try again in a moment."},
		{"an unclassified error", "injected failure", "P0001", http.StatusInternalServerError, "Something went wrong on our side, so the secret was not created. Try again"},
	} {
		var code int
		var page string
		if tc.status == http.StatusServiceUnavailable && !pg {
			// A SQLite trigger can raise only a constraint error, which
			// the store rightly calls no outage; so the outage is real:
			// another connection holds the writer's lock past the store's
			// busy timeout.
			release := holdSQLiteWriter(t, filepath.Join(svc.DataDir, "appkeys.db"))
			code, _, page = b.saveAsSecret(form, "ci-key")
			release()
		} else {
			failSecrets(tc.msg, tc.code)
			code, _, page = b.saveAsSecret(form, "ci-key")
		}
		if code != tc.status || !strings.Contains(page, tc.says) {
			t.Fatalf("%s: save = %d, want %d saying %q", tc.what, code, tc.status, tc.says)
		}
		if strings.Contains(page, made.plain) {
			t.Fatalf("%s: the retry page shows the key", tc.what)
		}
		// The dialog is back, open, with the name typed and the same form.
		m, f := sealedRE.FindStringSubmatch(page), flowRE.FindStringSubmatch(page)
		if m == nil || f == nil || m[1] != made.sealed || f[1] != made.flow || !strings.Contains(page, `value="ci-key"`) || !strings.Contains(page, "data-autoopen") {
			t.Fatalf("%s: the retry page lacks the dialog with the same sealed key", tc.what)
		}
		form = newKeyPage{flow: f[1], sealed: m[1]}
	}
	heal()
	if code, h, _ := b.saveAsSecret(form, "ci-key"); code != http.StatusSeeOther || h.Get("Location") != "/apps/"+appID+"/keys" {
		t.Fatalf("the retry once the store is well = %d to %q", code, h.Get("Location"))
	}
	if _, v, err := svc.Server.Service.ReadSecret(context.Background(), ownerCaller(t, svc, svc.OwnerToken), "ci-key"); err != nil || v != made.plain {
		t.Fatalf("secret ci-key = %q, %v; want the new key", v, err)
	}
}

// holdSQLiteWriter takes the SQLite database's write lock on a connection
// of its own and holds it until the returned function is called.
func holdSQLiteWriter(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return func() {
		tx.Rollback()
		db.Close()
	}
}

// sessionCleared tells whether an answer deletes the session cookie.
func sessionCleared(h http.Header) bool {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "appkeys_session" && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// A store outage during a page view is an error page, never a logout: the
// session's row and the cookie stay, and once the store is back the user
// is still logged in.
func TestStoreOutageKeepsTheSession(t *testing.T) {
	t.Run("sqlite, the store closed", func(t *testing.T) {
		if os.Getenv(servicetest.EnvStore) == "postgres" {
			t.Skip("closes the SQLite store; the postgres case stops a cluster")
		}
		svc := startConsole(t)
		b := newBrowserless(t, svc.URL)
		b.login(svc.OwnerToken)
		cookie := b.sessionCookieOf()
		svc.Server.Store.Close()
		for _, path := range []string{"/", "/keys"} {
			code, h, page := b.do(http.MethodGet, path, nil)
			// A closed store is an outage like any other: 503, in words.
			if code != http.StatusServiceUnavailable || sessionCleared(h) || !strings.Contains(page, "The key store is unavailable; try again.") {
				t.Errorf("GET %s with the store closed = %d (cookie cleared %v); want an error page and the session kept", path, code, sessionCleared(h))
			}
		}
		if code, h, _ := b.post("/apps", url.Values{"name": {"x"}, "kind": {"cloud_function"}}); code < 500 || sessionCleared(h) {
			t.Errorf("POST with the store closed = %d (cookie cleared %v)", code, sessionCleared(h))
		}
		svc.Restart()
		if _, err := svc.Server.Service.ConsoleSession(context.Background(), cookie); err != nil {
			t.Fatalf("the session's row after the outage: %v", err)
		}
		if code, page := b.get("/"); code != http.StatusOK || !strings.Contains(page, "owner@appkeys.local") {
			t.Fatalf("GET / once the store is back = %d; want the user still logged in", code)
		}
	})
	t.Run("postgres, the database stopped", func(t *testing.T) {
		cl := pgtest.StartCluster(t)
		svc := startConsole(t, servicetest.WithDatabase(cl.URL))
		b := newBrowserless(t, svc.URL)
		b.login(svc.OwnerToken)
		cookie := b.sessionCookieOf()
		cl.Stop()
		code, h, page := b.do(http.MethodGet, "/", nil)
		if code != http.StatusServiceUnavailable || sessionCleared(h) || !strings.Contains(page, "The key store is unavailable; try again.") {
			t.Errorf("GET / with the database stopped = %d (cookie cleared %v); want 503 and the session kept", code, sessionCleared(h))
		}
		cl.Start()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, h, page := b.do(http.MethodGet, "/", nil)
			if code == http.StatusOK && strings.Contains(page, "owner@appkeys.local") {
				break
			}
			if code != http.StatusServiceUnavailable || sessionCleared(h) || time.Now().After(deadline) {
				t.Fatalf("GET / once the database is back = %d (cookie cleared %v); want the user still logged in", code, sessionCleared(h))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := svc.Server.Service.ConsoleSession(context.Background(), cookie); err != nil {
			t.Fatalf("the session's row after the outage: %v", err)
		}
	})
}

// Logging in with the cookie of an earlier session in the browser ends
// that session: one browser, one session.
func TestLoginEndsTheBrowsersOldSession(t *testing.T) {
	svc := startConsole(t)
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	old := b.sessionCookieOf()
	// A second login form (another tab opened before the first login).
	u := mustURL(t, svc.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "appkeys_login", Value: "second-tab-token", Path: "/"}})
	if code, h, _ := b.do(http.MethodPost, "/login", url.Values{"token": {svc.OwnerToken}, "csrf": {"second-tab-token"}}); code != http.StatusSeeOther || h.Get("Location") != "/" {
		t.Fatalf("second login = %d to %q", code, h.Get("Location"))
	}
	next := b.sessionCookieOf()
	if next == old {
		t.Fatalf("the second login kept the old cookie")
	}
	ctx := context.Background()
	if _, err := svc.Server.Service.ConsoleSession(ctx, old); keyservice.KindOf(err) != keyservice.KindUnauthorized {
		t.Errorf("the browser's old session after a new login: %v; want it ended", err)
	}
	if _, err := svc.Server.Service.ConsoleSession(ctx, next); err != nil {
		t.Errorf("the new session: %v", err)
	}
	if code, _ := b.get("/"); code != http.StatusOK {
		t.Errorf("GET / with the new session = %d", code)
	}
}
