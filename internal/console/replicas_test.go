package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

var (
	flowRE   = regexp.MustCompile(`/new-key/([^/"]+)/secret`)
	sealedRE = regexp.MustCompile(`name="new_key" value="([^"]+)"`)
)

// newKeyPage is what the page answering a key's creation carries: the key
// it shows, and the Save As Secret form's flow and sealed key.
type newKeyPage struct {
	plain, flow, sealed string
}

// createKeyPage creates a key through the console and returns what the
// page carries for it.
func (b *browserless) createKeyPage(appID, name string) newKeyPage {
	b.t.Helper()
	code, _, page := b.post("/apps/"+appID+"/keys", url.Values{"name": {name}, "expires": {time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02")}})
	plain, m, s := fullKeyRE.FindString(page), flowRE.FindStringSubmatch(page), sealedRE.FindStringSubmatch(page)
	if code != http.StatusCreated || plain == "" || m == nil || s == nil {
		b.t.Fatalf("create key %q through %s = %d, key shown %v, save form %v, sealed key %v", name, b.base, code, plain != "", m != nil, s != nil)
	}
	return newKeyPage{plain: plain, flow: m[1], sealed: s[1]}
}

// saveAsSecret posts a page's Save As Secret form, as the browser does.
func (b *browserless) saveAsSecret(k newKeyPage, name string) (int, http.Header, string) {
	b.t.Helper()
	return b.post("/new-key/"+k.flow+"/secret", url.Values{"name": {name}, "new_key": {k.sealed}})
}

// sessionCookieOf returns the browser's session cookie value, under its
// plain name or its __Host- one (over https).
func (b *browserless) sessionCookieOf() string {
	b.t.Helper()
	for _, c := range b.c.Jar.Cookies(mustURL(b.t, b.base)) {
		if c.Name == "appkeys_session" || c.Name == "__Host-appkeys_session" {
			return c.Value
		}
	}
	b.t.Fatal("the browser holds no session cookie")
	return ""
}

func randomMasterKey(t *testing.T) string {
	k := make([]byte, keyservice.MasterKeyLen)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// TestSessionServedByEveryReplica runs two key services on one PostgreSQL
// database behind no sticky load balancer: a browser's requests land on
// either. It logs in through A, works through B, saves through A a key
// created on B (the form from B's page), sends one form through both at
// once, and logs out through B, after which A refuses the old cookie.
func TestSessionServedByEveryReplica(t *testing.T) {
	db := pgtest.NewDatabase(t)
	master := randomMasterKey(t)
	shared := servicetest.WithConfig(func(c *keyserver.Config) { c.DatabaseURL, c.MasterKey = db, master })
	a := startConsole(t, shared)
	b := startConsole(t, shared)
	if a.OwnerToken == "" || b.OwnerToken != "" {
		t.Fatalf("bootstrap: A's owner token %v, B's %v; want only A to bootstrap", a.OwnerToken != "", b.OwnerToken != "")
	}
	ctx := context.Background()
	owner := ownerCaller(t, a, a.OwnerToken)

	br := newBrowserless(t, a.URL)
	br.login(a.OwnerToken)
	csrfA := br.csrf
	// The cookie jar, like a browser, sends 127.0.0.1's cookies to either port.
	br.base = b.URL
	code, page := br.get("/")
	if code != http.StatusOK || !strings.Contains(page, "owner@appkeys.local") {
		t.Fatalf("GET / through B with A's session = %d", code)
	}
	if br.csrf != csrfA {
		t.Errorf("B's pages carry another CSRF token than A's")
	}
	if code, _, _ := br.post("/apps", url.Values{"name": {"orders"}, "kind": {"cloud_function"}}); code != http.StatusCreated {
		t.Fatalf("create app through B = %d", code)
	}
	apps, err := a.Server.Service.ListApps(ctx, owner)
	if err != nil || len(apps) != 1 {
		t.Fatalf("apps: %v %v", apps, err)
	}
	appID := apps[0].ID
	if code, _ := br.get("/apps/" + appID + "/keys"); code != http.StatusOK {
		t.Fatalf("keys view through B = %d", code)
	}
	made := br.createKeyPage(appID, "made-on-b")

	// Save As Secret through A, with the form from B's page: the key comes
	// back sealed, and A opens what B sealed.
	br.base = a.URL
	if code, h, _ := br.saveAsSecret(made, "from-b"); code != http.StatusSeeOther {
		t.Fatalf("save through A the key created on B = %d to %q", code, h.Get("Location"))
	}
	if _, v, err := a.Server.Service.ReadSecret(ctx, owner, "from-b"); err != nil || v != made.plain {
		t.Fatalf("secret from-b = %q, %v; want the key created on B", v, err)
	}
	// The notice left by A shows on B's next page, once.
	br.base = b.URL
	if _, page := br.get("/apps/" + appID + "/keys"); !strings.Contains(page, "Saved API key “made-on-b” as secret “from-b”.") {
		t.Errorf("B does not show the notice A left")
	}
	br.base = a.URL
	if _, page := br.get("/apps/" + appID + "/keys"); strings.Contains(page, "Saved API key") {
		t.Errorf("the notice was shown twice")
	}

	// One form, posted through both replicas at once under one name: one
	// secret is made, the other post is told the name is taken.
	raced := br.createKeyPage(appID, "raced")
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i, base := range []string{a.URL, b.URL} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"name": {"raced"}, "new_key": {raced.sealed}, "csrf": {br.csrf}}
			resp, err := br.c.PostForm(base+"/new-key/"+raced.flow+"/secret", form)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if !(codes[0] == http.StatusSeeOther && codes[1] == http.StatusConflict) && !(codes[0] == http.StatusConflict && codes[1] == http.StatusSeeOther) {
		t.Errorf("one Save As Secret form through A and B at once = %v; want one 303 and one 409", codes)
	}
	if _, v, err := a.Server.Service.ReadSecret(ctx, owner, "raced"); err != nil || v != raced.plain {
		t.Errorf("secret raced = %q, %v; want the raced key", v, err)
	}

	// Log out through B: A refuses the old cookie at once.
	cookies := br.c.Jar.Cookies(mustURL(t, a.URL))
	br.base = b.URL
	if code, h, _ := br.post("/logout", nil); code != http.StatusSeeOther || h.Get("Location") != "/login?m=out" {
		t.Fatalf("logout through B = %d to %q", code, h.Get("Location"))
	}
	replay := newBrowserless(t, a.URL)
	replay.c.Jar.SetCookies(mustURL(t, a.URL), cookies)
	if code, h, _ := replay.do(http.MethodGet, "/", nil); code != http.StatusSeeOther || h.Get("Location") != "/login?m=expired" {
		t.Errorf("the cookie logged out through B, on A = %d to %q; want a redirect to log in", code, h.Get("Location"))
	}
}

// A session, and the Save As Secret form of a key created before, survive
// a restart.
func TestSessionSurvivesARestart(t *testing.T) {
	svc, app, br := loggedInWithApp(t)
	ctx := context.Background()
	made := br.createKeyPage(app.App.ID, "before-restart")

	svc.Restart()
	if code, page := br.get("/"); code != http.StatusOK || !strings.Contains(page, "owner@appkeys.local") {
		t.Fatalf("GET / after a restart = %d; want the session alive", code)
	}
	if code, _, _ := br.saveAsSecret(made, "kept"); code != http.StatusSeeOther {
		t.Fatalf("save as secret after a restart = %d", code)
	}
	if _, v, err := svc.Server.Service.ReadSecret(ctx, ownerCaller(t, svc, svc.OwnerToken), "kept"); err != nil || v != made.plain {
		t.Fatalf("secret kept = %q, %v; want the key created before the restart", v, err)
	}
}

// The session cookie, the user's token and a key just created are never
// written to the database files, in any form: not in clear, and not
// sealed either (the key's sealed copy lives in the page alone). The
// session's row has no blob at all.
func TestSessionsLeaveNothingInClearOnDisk(t *testing.T) {
	if os.Getenv(servicetest.EnvStore) == "postgres" {
		t.Skip("checks the SQLite files; the PostgreSQL run keeps its rows in the cluster")
	}
	svc, app, br := loggedInWithApp(t)
	cookie := br.sessionCookieOf()
	made := br.createKeyPage(app.App.ID, "held")
	// A retry round trip too (the name is invalid), so the sealed key has
	// been through the server twice.
	if code, _, page := br.saveAsSecret(made, "not a name"); code != http.StatusUnprocessableEntity || !strings.Contains(page, made.sealed) {
		t.Fatalf("save under an invalid name = %d; want 422 with the form again", code)
	}
	rawCookie, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil {
		t.Fatal(err)
	}
	rawSealed, err := base64.RawURLEncoding.DecodeString(made.sealed)
	if err != nil || len(rawSealed) < 40 {
		t.Fatalf("the sealed key %q does not decode: %v", made.sealed, err)
	}

	svc.Stop() // flushes, checkpoints and closes the database
	dbPath := filepath.Join(svc.DataDir, "appkeys.db")
	var disk []byte
	for _, name := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		if b, err := os.ReadFile(name); err == nil {
			disk = append(disk, b...)
		}
	}
	sum := sha256.Sum256([]byte(cookie))
	sessionID := hex.EncodeToString(sum[:])
	if !bytes.Contains(disk, []byte(sessionID)) {
		t.Fatalf("the session's row (its hashed id) is not in the database files: read the wrong files?")
	}
	probes := map[string][]byte{
		"session cookie": []byte(cookie), "session cookie's bytes": rawCookie,
		"user token": []byte(svc.OwnerToken), "user token without prefix": []byte(svc.OwnerToken[4:]),
		"new key": []byte(made.plain), "new key without prefix": []byte(made.plain[4:]),
		"sealed key": []byte(made.sealed), "sealed key's ciphertext": rawSealed[8+1+12:],
	}
	for what, p := range probes {
		if bytes.Contains(disk, p) {
			t.Errorf("the database files contain the %s", what)
		}
	}

	// The session's row, column by column: no blob, nothing of the key.
	cols, vals := sessionRow(t, "sqlite", "file:"+dbPath, sessionID)
	for i, v := range vals {
		switch v := v.(type) {
		case []byte:
			t.Errorf("the session row's column %s holds a blob of %d bytes", cols[i], len(v))
		case string:
			for what, p := range probes {
				if strings.Contains(v, string(p)) {
					t.Errorf("the session row's column %s holds the %s", cols[i], what)
				}
			}
		}
	}
}

// sessionRow reads a console session's row, every column whatever its
// type, from the database driver and dsn name. keyservice's
// TestConsoleSessionRowHoldsNoSecret reads it the same way: that test sits
// below the packages a shared helper could live in, so it keeps its own.
func sessionRow(t *testing.T, driver, dsn, sessionID string) (cols []string, vals []any) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), `SELECT * FROM console_sessions WHERE id = $1`, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ = rows.Columns()
	if !rows.Next() {
		t.Fatalf("no session row: %v", rows.Err())
	}
	vals = make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	return cols, vals
}

// sessionRowText is everything a session's row holds, as text, on the
// test's store (SQLite or PostgreSQL).
func sessionRowText(t *testing.T, svc *servicetest.Service, cookie string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(cookie))
	driver, dsn := "sqlite", "file:"+filepath.Join(svc.DataDir, "appkeys.db")
	if svc.DatabaseURL != "" {
		driver, dsn = "pgx", svc.DatabaseURL
	}
	_, vals := sessionRow(t, driver, dsn, hex.EncodeToString(sum[:]))
	var out strings.Builder
	for _, v := range vals {
		fmt.Fprintf(&out, "%s\x00", v)
	}
	return out.String()
}

// Deleting a user ends their console sessions at once.
func TestDeletingAUserEndsTheirSessions(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	owner := ownerCaller(t, svc, svc.OwnerToken)
	member, token, err := svc.Server.Service.CreateUser(ctx, owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	br := newBrowserless(t, svc.URL)
	br.login(token)
	cookie := br.sessionCookieOf()
	if err := svc.Server.Service.DeleteUser(ctx, owner, member.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Server.Service.ConsoleSession(ctx, cookie); keyservice.KindOf(err) != keyservice.KindUnauthorized {
		t.Fatalf("a deleted user's session: %v; want it ended", err)
	}
	if code, h, _ := br.do(http.MethodGet, "/", nil); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("a deleted user's next page = %d to %q; want the login page", code, h.Get("Location"))
	}
}

// loggedInWithApp starts a console with an app named "api" and a
// browserless client logged in as the owner.
func loggedInWithApp(t *testing.T) (*servicetest.Service, keyservice.AppCreated, *browserless) {
	t.Helper()
	svc := startConsole(t)
	app, err := svc.Server.Service.CreateApp(context.Background(), ownerCaller(t, svc, svc.OwnerToken), "api", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	br := newBrowserless(t, svc.URL)
	br.login(svc.OwnerToken)
	return svc, app, br
}
