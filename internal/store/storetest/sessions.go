package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func (f fixture) session(t *testing.T, userID string, created, expires time.Time) store.ConsoleSession {
	t.Helper()
	c := store.ConsoleSession{ID: id("sess"), UserID: userID, CreatedAt: created, ExpiresAt: expires}
	if err := f.s.CreateConsoleSession(context.Background(), c, ""); err != nil {
		t.Fatalf("CreateConsoleSession: %v", err)
	}
	return c
}

func testConsoleSessions(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	c := f.session(t, f.owner.ID, t0, t0.Add(8*time.Hour))
	got, u, err := s.ConsoleSession(ctx, c.ID, t0.Add(time.Minute))
	if err != nil || got.ID != c.ID || got.UserID != f.owner.ID || got.Flash != "" ||
		!got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(c.ExpiresAt) {
		t.Fatalf("ConsoleSession = %+v, %v; want %+v", got, err, c)
	}
	// The session comes with its user, read live.
	if u.ID != f.owner.ID || u.OrgID != f.org.ID || u.Email != f.owner.Email || u.Role != "owner" || u.DeletedAt != nil {
		t.Fatalf("ConsoleSession's user = %+v; want %+v", u, f.owner)
	}
	if _, _, err := s.ConsoleSession(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session: %v, want ErrNotFound", err)
	}
	if err := s.CreateConsoleSession(ctx, c, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("session id taken twice: %v, want ErrConflict", err)
	}
	stranger := store.ConsoleSession{ID: id("sess"), UserID: "usr_nobody", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, stranger, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session of an unknown user: %v, want ErrNotFound", err)
	}

	// A notice is set, replaced, taken once, and belongs to its session.
	other := f.session(t, f.owner.ID, t0, t0.Add(time.Hour))
	for _, msg := range []string{"first", "Revoked API key “ci”."} {
		if err := s.SetConsoleSessionFlash(ctx, c.ID, t0, msg); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := s.ConsoleSession(ctx, c.ID, t0); err != nil || got.Flash != "Revoked API key “ci”." {
		t.Fatalf("flash after two sets = %q, %v; want the last", got.Flash, err)
	}
	if got, _, _ := s.ConsoleSession(ctx, other.ID, t0); got.Flash != "" {
		t.Fatalf("another session's flash = %q", got.Flash)
	}
	if msg, err := s.TakeConsoleSessionFlash(ctx, c.ID, t0); err != nil || msg != "Revoked API key “ci”." {
		t.Fatalf("take flash = %q, %v", msg, err)
	}
	if msg, err := s.TakeConsoleSessionFlash(ctx, c.ID, t0); err != nil || msg != "" {
		t.Fatalf("flash taken twice: %q, %v", msg, err)
	}
	if err := s.SetConsoleSessionFlash(ctx, "nope", t0, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("flash on an unknown session: %v, want ErrNotFound", err)
	}
	if _, err := s.TakeConsoleSessionFlash(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("take flash of an unknown session: %v, want ErrNotFound", err)
	}

	t1 := t0.Add(2 * time.Minute)
	if err := s.DeleteConsoleSession(ctx, c.ID, t1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ConsoleSession(ctx, c.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if err := s.DeleteConsoleSession(ctx, c.ID, t1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if err := s.SetConsoleSessionFlash(ctx, c.ID, t0, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("flash on a deleted session: %v", err)
	}
	if _, _, err := s.ConsoleSession(ctx, other.ID, t0); err != nil {
		t.Fatalf("another session after a delete: %v", err)
	}

	// Two logins (c and other) and one logout are in the org's audit log,
	// by and about the owner; the refused creates and the second delete
	// added nothing, and no record names a session.
	recs, err := s.ListAudit(ctx, f.org.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, a := range recs {
		if a.Action != store.AuditConsoleLogin && a.Action != store.AuditConsoleLogout {
			continue
		}
		audited = append(audited, a.Action+"@"+a.At.Sub(t0).String())
		if a.Actor != f.owner.ID || a.Target != f.owner.ID || a.OrgID != f.org.ID || a.Detail != "" {
			t.Errorf("audit record %+v; want by and about %s in %s, no detail", a, f.owner.ID, f.org.ID)
		}
	}
	if want := "console.logout@2m0s console.login@0s console.login@0s"; strings.Join(audited, " ") != want {
		t.Errorf("console audit records: %q; want %q", strings.Join(audited, " "), want)
	}
}

// A login over an old cookie replaces the browser's old session in the
// same transaction; without one, other sessions stay.
func testConsoleSessionReplaces(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	old := f.session(t, f.owner.ID, t0, t0.Add(time.Hour))
	kept := f.session(t, f.owner.ID, t0, t0.Add(time.Hour))
	next := store.ConsoleSession{ID: id("sess"), UserID: f.owner.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, next, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ConsoleSession(ctx, old.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replaced session: %v, want ErrNotFound", err)
	}
	for _, c := range []store.ConsoleSession{kept, next} {
		if _, _, err := s.ConsoleSession(ctx, c.ID, t0); err != nil {
			t.Fatalf("session %s after a replace: %v", c.ID, err)
		}
	}
	// Replacing a session already gone is no error.
	again := store.ConsoleSession{ID: id("sess"), UserID: f.owner.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, again, old.ID); err != nil {
		t.Fatalf("replacing a session already gone: %v", err)
	}
	// A failed create (the user is gone) replaces nothing.
	m := store.User{ID: id("usr"), OrgID: f.org.ID, Email: id("m") + "@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
	if err := s.CreateUser(ctx, m, f.owner.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, f.org.ID, m.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	late := store.ConsoleSession{ID: id("sess"), UserID: m.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, late, kept.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session for a deleted user: %v, want ErrNotFound", err)
	}
	if _, _, err := s.ConsoleSession(ctx, kept.ID, t0); err != nil {
		t.Fatalf("a failed create deleted the session it would replace: %v", err)
	}
}

func testConsoleSessionExpiryAndSweep(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	short := f.session(t, f.owner.ID, t0, t0.Add(time.Hour))
	long := f.session(t, f.owner.ID, t0, t0.Add(8*time.Hour))
	at := t0.Add(time.Hour)
	if _, _, err := s.ConsoleSession(ctx, short.ID, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session at its expiry: %v, want ErrNotFound", err)
	}
	if err := s.SetConsoleSessionFlash(ctx, short.ID, at, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("flash on an expired session: %v, want ErrNotFound", err)
	}
	if _, err := s.TakeConsoleSessionFlash(ctx, short.ID, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("take flash of an expired session: %v, want ErrNotFound", err)
	}
	if _, _, err := s.ConsoleSession(ctx, long.ID, at); err != nil {
		t.Fatalf("a live session: %v", err)
	}
	// Expired rows stay until swept: read as of an earlier time, the
	// expired one is still there.
	if _, _, err := s.ConsoleSession(ctx, short.ID, t0); err != nil {
		t.Fatalf("expired row before any sweep: %v", err)
	}
	// Creating a session sweeps the expired ones.
	f.session(t, f.owner.ID, at, at.Add(8*time.Hour))
	if _, _, err := s.ConsoleSession(ctx, short.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired row after a create: %v, want it swept", err)
	}
	if _, _, err := s.ConsoleSession(ctx, long.ID, at); err != nil {
		t.Fatalf("a live session was swept: %v", err)
	}

	// A sweep deletes no more than its limit, oldest first, and never a
	// live session.
	var expired []store.ConsoleSession
	for i := 0; i < 5; i++ {
		expired = append(expired, f.session(t, f.owner.ID, at, at.Add(time.Duration(i+1)*time.Minute)))
	}
	later := at.Add(time.Hour)
	if n, err := s.SweepConsoleSessions(ctx, later, 3); err != nil || n != 3 {
		t.Fatalf("SweepConsoleSessions(limit 3) = %d, %v; want 3", n, err)
	}
	for i, c := range expired {
		_, _, err := s.ConsoleSession(ctx, c.ID, at)
		if gone := errors.Is(err, store.ErrNotFound); gone != (i < 3) {
			t.Errorf("expired session %d: %v (gone %v, want %v)", i, err, gone, i < 3)
		}
	}
	if n, err := s.SweepConsoleSessions(ctx, later, 100); err != nil || n != 2 {
		t.Fatalf("second sweep = %d, %v; want 2", n, err)
	}
	if _, _, err := s.ConsoleSession(ctx, long.ID, later); err != nil {
		t.Fatalf("a live session after sweeps: %v", err)
	}
}

func testConsoleSessionsEndWithTheirUser(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	m := store.User{ID: id("usr"), OrgID: f.org.ID, Email: id("m") + "@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
	if err := s.CreateUser(ctx, m, f.owner.ID); err != nil {
		t.Fatal(err)
	}
	mine := []store.ConsoleSession{
		f.session(t, m.ID, t0, t0.Add(time.Hour)),
		f.session(t, m.ID, t0, t0.Add(time.Hour)),
	}
	if _, u, err := s.ConsoleSession(ctx, mine[0].ID, t0); err != nil || u.ID != m.ID || u.Role != "member" {
		t.Fatalf("a member's session = %+v, %v", u, err)
	}
	owners := f.session(t, f.owner.ID, t0, t0.Add(time.Hour))
	if _, err := s.DeleteUser(ctx, f.org.ID, m.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	for _, c := range mine {
		if _, _, err := s.ConsoleSession(ctx, c.ID, t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a deleted user's session: %v, want ErrNotFound", err)
		}
	}
	if _, _, err := s.ConsoleSession(ctx, owners.ID, t0); err != nil {
		t.Errorf("another user's session ended with the deleted one: %v", err)
	}
	late := store.ConsoleSession{ID: id("sess"), UserID: m.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, late, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session for a deleted user: %v, want ErrNotFound", err)
	}
}

// testConcurrentConsoleSessionFlash takes one notice through many requests
// at once, as one browser's requests on several replicas do: it is shown
// once.
func testConcurrentConsoleSessionFlash(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	c := f.session(t, f.owner.ID, t0, t0.Add(time.Hour))
	if err := s.SetConsoleSessionFlash(ctx, c.ID, t0, "Saved."); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var taken, empty atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := s.TakeConsoleSessionFlash(ctx, c.ID, t0)
			switch {
			case err != nil:
				t.Errorf("take: %v", err)
			case msg == "Saved.":
				taken.Add(1)
			case msg == "":
				empty.Add(1)
			default:
				t.Errorf("take = %q", msg)
			}
		}()
	}
	wg.Wait()
	if taken.Load() != 1 || empty.Load() != n-1 {
		t.Fatalf("the notice was taken %d times, missed %d; want once and %d", taken.Load(), empty.Load(), n-1)
	}
}
