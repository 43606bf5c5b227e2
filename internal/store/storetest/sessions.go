package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func (f fixture) session(t *testing.T, userID string, sealed []byte, created, expires time.Time) store.ConsoleSession {
	t.Helper()
	c := store.ConsoleSession{ID: id("sess"), UserID: userID, Sealed: sealed, CreatedAt: created, ExpiresAt: expires}
	if err := f.s.CreateConsoleSession(context.Background(), c); err != nil {
		t.Fatalf("CreateConsoleSession: %v", err)
	}
	return c
}

func testConsoleSessions(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	c := f.session(t, f.owner.ID, []byte{0, 1, 2, 0xff}, t0, t0.Add(8*time.Hour))
	got, err := s.ConsoleSession(ctx, c.ID, t0.Add(time.Minute))
	if err != nil || got.ID != c.ID || got.UserID != f.owner.ID || !bytes.Equal(got.Sealed, c.Sealed) ||
		!got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(c.ExpiresAt) {
		t.Fatalf("ConsoleSession = %+v, %v; want %+v", got, err, c)
	}
	if _, err := s.ConsoleSession(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session: %v, want ErrNotFound", err)
	}
	if err := s.CreateConsoleSession(ctx, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("session id taken twice: %v, want ErrConflict", err)
	}
	stranger := store.ConsoleSession{ID: id("sess"), UserID: "usr_nobody", Sealed: []byte{1}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, stranger); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session of an unknown user: %v, want ErrNotFound", err)
	}

	// fn sees the row and what it returns is stored; nil changes nothing;
	// an error rolls back and comes back as is.
	err = s.UpdateConsoleSession(ctx, c.ID, t0, func(cur store.ConsoleSession) ([]byte, error) {
		if cur.ID != c.ID || !bytes.Equal(cur.Sealed, c.Sealed) {
			t.Errorf("update sees %+v", cur)
		}
		return []byte("second"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateConsoleSession(ctx, c.ID, t0, func(store.ConsoleSession) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.UpdateConsoleSession(ctx, c.ID, t0, func(store.ConsoleSession) ([]byte, error) { return []byte("lost"), boom }); !errors.Is(err, boom) {
		t.Fatalf("update whose fn fails = %v, want its error", err)
	}
	if got, err := s.ConsoleSession(ctx, c.ID, t0); err != nil || string(got.Sealed) != "second" {
		t.Fatalf("after updates: %q, %v; want \"second\"", got.Sealed, err)
	}
	if err := s.UpdateConsoleSession(ctx, "nope", t0, func(store.ConsoleSession) ([]byte, error) {
		t.Error("fn ran for an unknown session")
		return nil, nil
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of an unknown session: %v", err)
	}

	other := f.session(t, f.owner.ID, []byte("other"), t0, t0.Add(time.Hour))
	if err := s.DeleteConsoleSession(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsoleSession(ctx, c.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if err := s.DeleteConsoleSession(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if err := s.UpdateConsoleSession(ctx, c.ID, t0, func(store.ConsoleSession) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a deleted session: %v", err)
	}
	if got, err := s.ConsoleSession(ctx, other.ID, t0); err != nil || string(got.Sealed) != "other" {
		t.Fatalf("another session after a delete: %+v, %v", got, err)
	}
}

func testConsoleSessionExpiryAndSweep(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	short := f.session(t, f.owner.ID, []byte("short"), t0, t0.Add(time.Hour))
	long := f.session(t, f.owner.ID, []byte("long"), t0, t0.Add(8*time.Hour))
	at := t0.Add(time.Hour)
	if _, err := s.ConsoleSession(ctx, short.ID, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session at its expiry: %v, want ErrNotFound", err)
	}
	if err := s.UpdateConsoleSession(ctx, short.ID, at, func(store.ConsoleSession) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of an expired session: %v, want ErrNotFound", err)
	}
	if _, err := s.ConsoleSession(ctx, long.ID, at); err != nil {
		t.Fatalf("a live session: %v", err)
	}
	// Expired rows stay until swept: read as of an earlier time, the
	// expired one is still there.
	if _, err := s.ConsoleSession(ctx, short.ID, t0); err != nil {
		t.Fatalf("expired row before any sweep: %v", err)
	}
	// Creating a session sweeps the expired ones.
	f.session(t, f.owner.ID, []byte("new"), at, at.Add(8*time.Hour))
	if _, err := s.ConsoleSession(ctx, short.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired row after a create: %v, want it swept", err)
	}
	if _, err := s.ConsoleSession(ctx, long.ID, at); err != nil {
		t.Fatalf("a live session was swept: %v", err)
	}

	// A sweep deletes no more than its limit, oldest first, and never a
	// live session.
	var expired []store.ConsoleSession
	for i := 0; i < 5; i++ {
		expired = append(expired, f.session(t, f.owner.ID, []byte{byte(i)}, at, at.Add(time.Duration(i+1)*time.Minute)))
	}
	later := at.Add(time.Hour)
	if n, err := s.SweepConsoleSessions(ctx, later, 3); err != nil || n != 3 {
		t.Fatalf("SweepConsoleSessions(limit 3) = %d, %v; want 3", n, err)
	}
	for i, c := range expired {
		_, err := s.ConsoleSession(ctx, c.ID, at)
		if gone := errors.Is(err, store.ErrNotFound); gone != (i < 3) {
			t.Errorf("expired session %d: %v (gone %v, want %v)", i, err, gone, i < 3)
		}
	}
	if n, err := s.SweepConsoleSessions(ctx, later, 100); err != nil || n != 2 {
		t.Fatalf("second sweep = %d, %v; want 2", n, err)
	}
	if _, err := s.ConsoleSession(ctx, long.ID, later); err != nil {
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
		f.session(t, m.ID, []byte("a"), t0, t0.Add(time.Hour)),
		f.session(t, m.ID, []byte("b"), t0, t0.Add(time.Hour)),
	}
	owners := f.session(t, f.owner.ID, []byte("o"), t0, t0.Add(time.Hour))
	if _, err := s.DeleteUser(ctx, f.org.ID, m.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	for _, c := range mine {
		if _, err := s.ConsoleSession(ctx, c.ID, t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a deleted user's session: %v, want ErrNotFound", err)
		}
	}
	if _, err := s.ConsoleSession(ctx, owners.ID, t0); err != nil {
		t.Errorf("another user's session ended with the deleted one: %v", err)
	}
	late := store.ConsoleSession{ID: id("sess"), UserID: m.ID, Sealed: []byte("late"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, late); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session for a deleted user: %v, want ErrNotFound", err)
	}
}

// testConcurrentConsoleSessionUpdates runs read-modify-writes of one
// session at once, as requests of one browser on several replicas do: none
// may be lost, and a thing taken from the session is taken once.
func testConcurrentConsoleSessionUpdates(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	c := f.session(t, f.owner.ID, []byte{}, t0, t0.Add(time.Hour))
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.UpdateConsoleSession(ctx, c.ID, t0, func(cur store.ConsoleSession) ([]byte, error) {
				return append(append([]byte{}, cur.Sealed...), byte('a'+i)), nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	got, err := s.ConsoleSession(ctx, c.ID, t0)
	if err != nil || len(got.Sealed) != n {
		t.Fatalf("after %d concurrent appends the state is %q, %v: updates were lost", n, got.Sealed, err)
	}

	take := f.session(t, f.owner.ID, []byte("held"), t0, t0.Add(time.Hour))
	var taken, missed atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.UpdateConsoleSession(ctx, take.ID, t0, func(cur store.ConsoleSession) ([]byte, error) {
				if string(cur.Sealed) != "held" {
					return nil, errGone
				}
				return []byte("taken"), nil
			})
			switch {
			case err == nil:
				taken.Add(1)
			case errors.Is(err, errGone):
				missed.Add(1)
			default:
				t.Errorf("take: %v", err)
			}
		}()
	}
	wg.Wait()
	if taken.Load() != 1 || missed.Load() != n-1 {
		t.Fatalf("taken %d times, missed %d; want once and %d", taken.Load(), missed.Load(), n-1)
	}
}

var errGone = fmt.Errorf("already taken")
