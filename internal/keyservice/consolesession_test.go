package keyservice

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/testclock"
)

// sessionWorld is a service on a fresh SQLite store with a settable clock
// and the bootstrap owner's token.
type sessionWorld struct {
	st    *store.Store
	path  string // the SQLite file
	svc   *Service
	owner string
	clk   *testclock.Clock
}

func (w *sessionWorld) clock() time.Time        { return w.clk.Now() }
func (w *sessionWorld) advance(d time.Duration) { w.clk.Add(d) }

func newSessionWorld(t *testing.T) *sessionWorld {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "appkeys.db")
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &sessionWorld{st: st, path: path, clk: testclock.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))}
	w.svc, w.owner = bootstrapped(t, st, Config{MasterKey: bytes.Repeat([]byte{7}, MasterKeyLen), Now: w.clock})
	return w
}

func wantKind(t *testing.T, what string, err error, kind Kind) {
	t.Helper()
	if KindOf(err) != kind {
		t.Fatalf("%s: %v (kind %d), want kind %d", what, err, KindOf(err), kind)
	}
}

func TestConsoleSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	cookie, started, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cookie) < 43 || strings.Contains(cookie, w.owner) || started.CSRF == "" || started.CSRF == cookie ||
		started.ID != sessionID(cookie) || started.Caller.User == nil || started.Caller.User.Role != RoleOwner {
		t.Fatalf("start = %q, %+v", cookie, started)
	}
	if want := w.clock().Add(ConsoleSessionLifetime); !started.Expires.Equal(want) {
		t.Errorf("expires %v, want %v", started.Expires, want)
	}
	got, err := w.svc.ConsoleSession(ctx, cookie)
	if err != nil || got.ID != started.ID || got.CSRF != started.CSRF || got.Flash != "" ||
		got.Caller.User == nil || got.Caller.User.ID != started.Caller.User.ID || got.Caller.Admin || got.Caller.App != nil {
		t.Fatalf("get = %+v, %v", got, err)
	}
	// The caller acts as the user: what the session does is the user's.
	if app, err := w.svc.CreateApp(ctx, got.Caller, "fn", KindCloudFunction); err != nil || app.App.CreatedBy != got.Caller.User.ID {
		t.Fatalf("create an app as the session's caller: %+v, %v", app, err)
	}
	other, _, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := w.svc.ConsoleSession(ctx, other); o.CSRF == got.CSRF || other == cookie {
		t.Errorf("two sessions share a cookie or a CSRF token")
	}

	// A notice is left, shown once, and belongs to its session.
	if err := w.svc.SetConsoleFlash(ctx, cookie, "Saved."); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.svc.ConsoleSession(ctx, cookie); got.Flash != "Saved." {
		t.Fatalf("flash after set = %q", got.Flash)
	}
	if o, _ := w.svc.ConsoleSession(ctx, other); o.Flash != "" {
		t.Fatalf("another session got the notice: %q", o.Flash)
	}
	if msg, err := w.svc.TakeConsoleFlash(ctx, cookie); err != nil || msg != "Saved." {
		t.Fatalf("take = %q, %v", msg, err)
	}
	if msg, err := w.svc.TakeConsoleFlash(ctx, cookie); err != nil || msg != "" {
		t.Fatalf("the notice was taken twice: %q, %v", msg, err)
	}

	if err := w.svc.EndConsoleSession(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.EndConsoleSession(ctx, cookie); err != nil {
		t.Fatalf("ending a session twice: %v", err)
	}
	_, err = w.svc.ConsoleSession(ctx, cookie)
	wantKind(t, "get after end", err, KindUnauthorized)
	wantKind(t, "flash after end", w.svc.SetConsoleFlash(ctx, cookie, "x"), KindUnauthorized)
	_, err = w.svc.TakeConsoleFlash(ctx, cookie)
	wantKind(t, "take flash after end", err, KindUnauthorized)
	_, err = w.svc.ConsoleSession(ctx, "")
	wantKind(t, "empty cookie", err, KindUnauthorized)
	_, err = w.svc.ConsoleSession(ctx, strings.Repeat("x", 10000))
	wantKind(t, "huge cookie", err, KindUnauthorized)
}

// A login over the browser's old cookie ends the old session.
func TestConsoleSessionLoginEndsTheOldOne(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	old, _, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, _, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := w.svc.StartConsoleSession(ctx, w.owner, old)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.ConsoleSession(ctx, old)
	wantKind(t, "the browser's old session after a new login", err, KindUnauthorized)
	for _, c := range []string{next, elsewhere} {
		if _, err := w.svc.ConsoleSession(ctx, c); err != nil {
			t.Fatalf("a session that should live: %v", err)
		}
	}
	// An old cookie that is gone, or garbage, does not stop a login.
	for _, junk := range []string{old, strings.Repeat("x", 10000)} {
		if _, _, err := w.svc.StartConsoleSession(ctx, w.owner, junk); err != nil {
			t.Fatalf("login over a dead or bad cookie: %v", err)
		}
	}
	// A refused login ends nothing.
	_, _, err = w.svc.StartConsoleSession(ctx, "aku_"+strings.Repeat("x", 43), next)
	wantKind(t, "a bad token", err, KindUnauthorized)
	if _, err := w.svc.ConsoleSession(ctx, next); err != nil {
		t.Fatalf("a refused login ended the browser's session: %v", err)
	}
}

func TestConsoleSessionRefusesWhatIsNotAUserToken(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	_, _, err := w.svc.StartConsoleSession(ctx, "aku_"+strings.Repeat("x", 43), "")
	wantKind(t, "unknown token", err, KindUnauthorized)
	owner, _ := w.svc.Authenticate(ctx, w.owner)
	app, err := w.svc.CreateApp(ctx, owner, "fn", KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = w.svc.StartConsoleSession(ctx, app.VerifierToken, "")
	wantKind(t, "verifier token", err, KindForbidden)
}

func TestConsoleSessionExpiry(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	cookie, _, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	id := sessionID(cookie)
	w.advance(ConsoleSessionLifetime - time.Second)
	if _, err := w.svc.ConsoleSession(ctx, cookie); err != nil {
		t.Fatalf("a session a second before its end: %v", err)
	}
	w.advance(time.Second)
	_, err = w.svc.ConsoleSession(ctx, cookie)
	wantKind(t, "get after the lifetime", err, KindUnauthorized)
	// A login later sweeps the expired row.
	if _, _, err := w.svc.StartConsoleSession(ctx, w.owner, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.st.ConsoleSession(ctx, id, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired row after a later login: %v, want swept", err)
	}
}

// The session's row holds nothing secret, in any form: no token, no key,
// no blob. Its columns are the id (a hash of the cookie), the user id, the
// notice and two times.
func TestConsoleSessionRowHoldsNoSecret(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	cookie, sess, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	app, err := w.svc.CreateApp(ctx, sess.Caller, "fn", KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	created, err := w.svc.CreateKey(ctx, sess.Caller, app.App.ID, CreateKeyRequest{Name: "k", ExpiresAt: w.clock().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SealNewKey(sess, "flow", NewKey{Plain: created.Plain, AppID: app.App.ID, KeyName: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.SetConsoleFlash(ctx, cookie, "Created."); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+w.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT * FROM console_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if strings.Join(cols, ",") != "id,user_id,flash,created_at,expires_at,token_id" { // token_id names the token, never holds it
		t.Errorf("console_sessions columns = %v", cols)
	}
	n := 0
	for rows.Next() {
		n++
		// console's TestSessionsLeaveNothingInClearOnDisk has the same loop
		// over the same row through HTTP; a helper both could import would
		// have to live above keyservice, which this test cannot import.
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			var b []byte
			switch v := v.(type) {
			case []byte:
				t.Errorf("column %s holds a blob", cols[i])
				b = v
			case string:
				b = []byte(v)
			}
			for _, secret := range []string{cookie, w.owner, w.owner[4:], created.Plain, created.Plain[4:]} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("column %s holds %.12q", cols[i], secret)
				}
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d session rows, want 1", n)
	}
}

func TestConsoleSessionsEndWithTheirUser(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	owner, _ := w.svc.Authenticate(ctx, w.owner)
	member, memberToken, err := w.svc.CreateUser(ctx, owner, "dev@example.com", RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	cookie, _, err := w.svc.StartConsoleSession(ctx, memberToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := w.svc.ConsoleSession(ctx, cookie); err != nil || s.Caller.User.ID != member.ID || s.Caller.User.Role != RoleMember {
		t.Fatalf("the member's session = %+v, %v", s, err)
	}
	mine, _, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.DeleteUser(ctx, owner, member.ID); err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.ConsoleSession(ctx, cookie)
	wantKind(t, "a deleted user's session", err, KindUnauthorized)
	if _, err := w.svc.ConsoleSession(ctx, mine); err != nil {
		t.Fatalf("the deleting owner's session: %v", err)
	}
	_, _, err = w.svc.StartConsoleSession(ctx, memberToken, "")
	wantKind(t, "a deleted user logging in", err, KindUnauthorized)
}

// Only a session that is really gone is KindUnauthorized: a store that
// cannot answer says nothing about the session, whose row stays.
func TestConsoleSessionStoreErrorsAreNotUnauthorized(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	cookie, _, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.svc.ConsoleSession(canceled, cookie); err == nil || KindOf(err) == KindUnauthorized {
		t.Errorf("a canceled lookup = %v; want an error that is not KindUnauthorized", err)
	}
	w.st.Close()
	if _, err := w.svc.ConsoleSession(ctx, cookie); err == nil || KindOf(err) == KindUnauthorized {
		t.Errorf("a lookup on a closed store = %v; want an error that is not KindUnauthorized", err)
	}
	if _, err := w.svc.TakeConsoleFlash(ctx, cookie); err == nil || KindOf(err) == KindUnauthorized {
		t.Errorf("take flash on a closed store = %v; want an error that is not KindUnauthorized", err)
	}
	st, err := store.Open(ctx, w.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.ConsoleSession(ctx, sessionID(cookie), w.clock()); err != nil {
		t.Fatalf("the session's row after the store errors: %v", err)
	}
}

// TestSealedNewKey: a key sealed for a session's Save As Secret form opens
// for that session and flow, for NewKeySaveWindow, and for nothing else.
func TestSealedNewKey(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	_, a, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	k := NewKey{Plain: "cak_" + strings.Repeat("k", 49), AppID: "app_1", KeyName: "ci"}
	sealed, err := w.svc.SealNewKey(a, "flow1", k)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, k.Plain[4:12]) {
		t.Fatalf("the sealed field shows the key: %q", sealed)
	}
	if again, _ := w.svc.SealNewKey(a, "flow1", k); again == sealed {
		t.Errorf("two seals of one key are equal: the nonce is not random")
	}
	if got, err := w.svc.OpenNewKey(a, "flow1", sealed); err != nil || got != k {
		t.Fatalf("open = %+v, %v", got, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	flip := func(i int) string {
		c := bytes.Clone(raw)
		c[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(c)
	}
	later := bytes.Clone(raw)
	later[6]++ // the expiry, in clear, moved 256 ms later
	stranger, err := New(Config{Store: w.st, MasterKey: bytes.Repeat([]byte{8}, MasterKeyLen), Now: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what   string
		svc    *Service
		sess   ConsoleSession
		flow   string
		sealed string
		kind   Kind
	}{
		{"another session", w.svc, b, "flow1", sealed, KindForbidden},
		{"another flow", w.svc, a, "flow2", sealed, KindForbidden},
		{"an altered ciphertext", w.svc, a, "flow1", flip(len(raw) - 1), KindForbidden},
		{"an altered nonce", w.svc, a, "flow1", flip(10), KindForbidden},
		{"a later expiry", w.svc, a, "flow1", base64.RawURLEncoding.EncodeToString(later), KindForbidden},
		{"another master key", stranger, a, "flow1", sealed, KindForbidden},
		{"not base64", w.svc, a, "flow1", "%%%", KindForbidden},
		{"too short", w.svc, a, "flow1", "AAAA", KindForbidden},
		{"huge", w.svc, a, "flow1", strings.Repeat("A", 10000), KindForbidden},
		{"missing", w.svc, a, "flow1", "", KindBadRequest},
	} {
		_, err := tc.svc.OpenNewKey(tc.sess, tc.flow, tc.sealed)
		wantKind(t, tc.what, err, tc.kind)
		if errors.Is(err, ErrNewKeyExpired) {
			t.Errorf("%s: said expired", tc.what)
		}
	}

	w.advance(NewKeySaveWindow - time.Millisecond)
	if _, err := w.svc.OpenNewKey(a, "flow1", sealed); err != nil {
		t.Fatalf("open just before the window ends: %v", err)
	}
	w.advance(time.Millisecond)
	_, err = w.svc.OpenNewKey(a, "flow1", sealed)
	wantKind(t, "open at the window's end", err, KindInvalid)
	if !errors.Is(err, ErrNewKeyExpired) || !strings.Contains(err.Error(), "5 minutes") {
		t.Fatalf("open at the window's end: %v; want ErrNewKeyExpired saying 5 minutes", err)
	}
}
