package keyservice

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// sessionWorld is a service on a fresh SQLite store with a settable clock
// and the bootstrap owner's token.
type sessionWorld struct {
	st    *store.Store
	svc   *Service
	owner string
	mu    sync.Mutex
	now   time.Time
}

func (w *sessionWorld) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *sessionWorld) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = w.now.Add(d)
}

func newSessionWorld(t *testing.T) *sessionWorld {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "appkeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &sessionWorld{st: st, now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	w.svc, err = New(Config{Store: st, MasterKey: bytes.Repeat([]byte{7}, MasterKeyLen), Now: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, w.owner, _, err = w.svc.Bootstrap(ctx, "", "", func(string, string) error { return nil }); err != nil {
		t.Fatal(err)
	}
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
	cookie, started, err := w.svc.StartConsoleSession(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(cookie) < 43 || strings.Contains(cookie, w.owner) || started.Token != w.owner || started.CSRF == "" || started.CSRF == cookie {
		t.Fatalf("start = %q, %+v", cookie, started)
	}
	if want := w.clock().Add(ConsoleSessionLifetime); !started.Expires.Equal(want) {
		t.Errorf("expires %v, want %v", started.Expires, want)
	}
	got, err := w.svc.ConsoleSession(ctx, cookie)
	if err != nil || got.Token != w.owner || got.CSRF != started.CSRF || got.UserID == "" || got.Flash != "" || len(got.Pending) != 0 {
		t.Fatalf("get = %+v, %v", got, err)
	}
	other, _, err := w.svc.StartConsoleSession(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := w.svc.ConsoleSession(ctx, other); o.CSRF == got.CSRF || other == cookie {
		t.Errorf("two sessions share a cookie or a CSRF token")
	}

	// Updates see each other; an error from fn discards its changes.
	held := PendingKey{Plain: "cak_plain", AppID: "app_1", KeyName: "k", Expires: w.clock().Add(5 * time.Minute)}
	err = w.svc.UpdateConsoleSession(ctx, cookie, func(s *ConsoleSession) error {
		s.Flash = "Saved."
		s.Pending["flow1"] = held
		s.Token = "aku_ignored"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := w.svc.UpdateConsoleSession(ctx, cookie, func(s *ConsoleSession) error { s.Flash = "lost"; return boom }); err != boom {
		t.Fatalf("update whose fn fails = %v, want its error", err)
	}
	got, _ = w.svc.ConsoleSession(ctx, cookie)
	if got.Flash != "Saved." || got.Pending["flow1"] != held || got.Token != w.owner {
		t.Fatalf("after updates: %+v", got)
	}
	if o, _ := w.svc.ConsoleSession(ctx, other); o.Flash != "" || len(o.Pending) != 0 {
		t.Fatalf("another session changed with this one: %+v", o)
	}

	if err := w.svc.EndConsoleSession(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.EndConsoleSession(ctx, cookie); err != nil {
		t.Fatalf("ending a session twice: %v", err)
	}
	_, err = w.svc.ConsoleSession(ctx, cookie)
	wantKind(t, "get after end", err, KindUnauthorized)
	err = w.svc.UpdateConsoleSession(ctx, cookie, func(*ConsoleSession) error { t.Error("fn ran for an ended session"); return nil })
	wantKind(t, "update after end", err, KindUnauthorized)
	_, err = w.svc.ConsoleSession(ctx, "")
	wantKind(t, "empty cookie", err, KindUnauthorized)
	_, err = w.svc.ConsoleSession(ctx, strings.Repeat("x", 10000))
	wantKind(t, "huge cookie", err, KindUnauthorized)
}

func TestConsoleSessionRefusesWhatIsNotAUserToken(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	_, _, err := w.svc.StartConsoleSession(ctx, "aku_"+strings.Repeat("x", 43))
	wantKind(t, "unknown token", err, KindUnauthorized)
	owner, _ := w.svc.Authenticate(ctx, w.owner)
	app, err := w.svc.CreateApp(ctx, owner, "fn", KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = w.svc.StartConsoleSession(ctx, app.VerifierToken)
	wantKind(t, "verifier token", err, KindForbidden)
}

func TestConsoleSessionExpiry(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	cookie, _, err := w.svc.StartConsoleSession(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	id := sessionID(cookie)
	err = w.svc.UpdateConsoleSession(ctx, cookie, func(s *ConsoleSession) error {
		s.Pending["short"] = PendingKey{Plain: "cak_short", Expires: w.clock().Add(5 * time.Minute)}
		s.Pending["long"] = PendingKey{Plain: "cak_long", Expires: w.clock().Add(time.Hour)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.advance(5 * time.Minute)
	got, err := w.svc.ConsoleSession(ctx, cookie)
	if err != nil || len(got.Pending) != 1 || got.Pending["long"].Plain != "cak_long" {
		t.Fatalf("pending keys past their time: %+v, %v", got.Pending, err)
	}
	// The expired key left the row at that request.
	row, err := w.st.ConsoleSession(ctx, id, w.clock())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := w.svc.openSession(row); err != nil || len(st.Pending) != 1 {
		t.Fatalf("the row still holds %d pending keys (%v), want 1", len(st.Pending), err)
	}

	w.advance(ConsoleSessionLifetime)
	_, err = w.svc.ConsoleSession(ctx, cookie)
	wantKind(t, "get after the lifetime", err, KindUnauthorized)
	// A login later sweeps the expired row.
	if _, _, err := w.svc.StartConsoleSession(ctx, w.owner); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.ConsoleSession(ctx, id, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired row after a later login: %v, want swept", err)
	}
}

// The row holds nothing in clear, and its blob opens only in its own row
// and under its own master key.
func TestConsoleSessionRowIsSealedAndBound(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	cookie, _, err := w.svc.StartConsoleSession(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	err = w.svc.UpdateConsoleSession(ctx, cookie, func(s *ConsoleSession) error {
		s.Flash = "flash-in-clear?"
		s.Pending["flow"] = PendingKey{Plain: "cak_pending-key-in-clear", Expires: w.clock().Add(time.Minute)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	row, err := w.st.ConsoleSession(ctx, sessionID(cookie), w.clock())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{cookie, w.owner, w.owner[4:], "flash-in-clear?", "cak_pending-key-in-clear"} {
		if strings.Contains(row.ID, secret) || bytes.Contains(row.Sealed, []byte(secret)) {
			t.Errorf("the session row holds %.12q in clear", secret)
		}
	}

	// A blob moved into another session's row does not open there.
	victim, _, err := w.svc.StartConsoleSession(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	err = w.st.UpdateConsoleSession(ctx, sessionID(victim), w.clock(), func(store.ConsoleSession) ([]byte, error) { return row.Sealed, nil })
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.ConsoleSession(ctx, victim)
	wantKind(t, "a blob moved to another row", err, KindUnauthorized)

	// Another master key reads nothing.
	stranger, err := New(Config{Store: w.st, MasterKey: bytes.Repeat([]byte{8}, MasterKeyLen), Now: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stranger.ConsoleSession(ctx, cookie)
	wantKind(t, "another master key", err, KindUnauthorized)
	if _, err := w.svc.ConsoleSession(ctx, cookie); err != nil {
		t.Fatalf("the right key after a wrong one: %v", err)
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
	cookie, _, err := w.svc.StartConsoleSession(ctx, memberToken)
	if err != nil {
		t.Fatal(err)
	}
	mine, _, err := w.svc.StartConsoleSession(ctx, w.owner)
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
	_, _, err = w.svc.StartConsoleSession(ctx, memberToken)
	wantKind(t, "a deleted user logging in", err, KindUnauthorized)
}

func TestConsoleSessionPendingKeyIsTakenOnce(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	cookie, _, err := w.svc.StartConsoleSession(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	err = w.svc.UpdateConsoleSession(ctx, cookie, func(s *ConsoleSession) error {
		s.Pending["flow"] = PendingKey{Plain: "cak_x", Expires: w.clock().Add(time.Minute)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var taken atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.svc.UpdateConsoleSession(ctx, cookie, func(s *ConsoleSession) error {
				if _, ok := s.Pending["flow"]; ok {
					delete(s.Pending, "flow")
					taken.Add(1)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if taken.Load() != 1 {
		t.Fatalf("the pending key was taken %d times, want once", taken.Load())
	}
}
