package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func (f fixture) verifier(appID string, at time.Time) store.VerifierToken {
	return store.VerifierToken{ID: id("vtk"), AppID: appID, OrgID: f.org.ID, Hash: id("v1:ver"), Prefix: "akv_abcdef", CreatedAt: at, CreatedBy: f.owner.ID}
}

// An app has one current verifier token and at most one previous one
// counting down; a third is refused, the current one cannot be retired,
// and other organizations and apps see none of it.
func testVerifierTokens(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	list, err := s.ListVerifierTokens(ctx, f.org.ID, f.app.ID, t0)
	if err != nil || len(list) != 1 || list[0].ExpiresAt != nil {
		t.Fatalf("a new app's tokens = %+v, %v", list, err)
	}
	firstID := list[0].ID

	// Rotation with an hour's overlap.
	at := t0.Add(time.Minute)
	second := f.verifier(f.app.ID, at)
	prev, err := s.MintVerifierToken(ctx, second, at.Add(time.Hour))
	if err != nil || prev.ID != firstID || prev.ExpiresAt == nil || !prev.ExpiresAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("MintVerifierToken = %+v, %v", prev, err)
	}
	if _, v, err := s.AppByVerifier(ctx, f.app.VerifierHash); err != nil || v.ExpiresAt == nil || !v.ExpiresAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("the previous token after the mint: %+v, %v", v, err)
	}
	// A third token while the previous one counts down would let the
	// second outlive its overlap: refused, and nothing changes.
	third := f.verifier(f.app.ID, at.Add(time.Minute))
	if _, err := s.MintVerifierToken(ctx, third, at.Add(30*24*time.Hour)); !errors.Is(err, store.ErrPreviousTokenLive) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("third mint: %v, want ErrPreviousTokenLive", err)
	}
	if _, _, err := s.AppByVerifier(ctx, third.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused third token exists: %v", err)
	}
	list, err = s.ListVerifierTokens(ctx, f.org.ID, f.app.ID, at)
	if err != nil || len(list) != 2 || list[0].ID != firstID || !list[0].ExpiresAt.Equal(at.Add(time.Hour)) || list[1].ID != second.ID || list[1].ExpiresAt != nil {
		t.Fatalf("tokens during the overlap = %+v, %v", list, err)
	}
	// The current token stays; the previous one may go at once.
	if _, err := s.RetireVerifierToken(ctx, f.org.ID, f.app.ID, second.ID, f.owner.ID, at); !errors.Is(err, store.ErrCurrentToken) {
		t.Fatalf("retiring the current token: %v, want ErrCurrentToken", err)
	}
	other := setup(t, s)
	for name, call := range map[string]func() error{
		"retire from another org": func() error {
			_, err := s.RetireVerifierToken(ctx, other.org.ID, f.app.ID, firstID, other.owner.ID, at)
			return err
		},
		"retire through another app": func() error {
			_, err := s.RetireVerifierToken(ctx, f.org.ID, other.app.ID, firstID, f.owner.ID, at)
			return err
		},
		"list from another org": func() error { _, err := s.ListVerifierTokens(ctx, other.org.ID, f.app.ID, at); return err },
		"mint from another org": func() error {
			v := other.verifier(f.app.ID, at)
			_, err := s.MintVerifierToken(ctx, v, at)
			return err
		},
	} {
		if err := call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	retired, err := s.RetireVerifierToken(ctx, f.org.ID, f.app.ID, firstID, f.owner.ID, at)
	if err != nil || retired.Hash != f.app.VerifierHash {
		t.Fatalf("RetireVerifierToken = %+v, %v", retired, err)
	}
	if _, _, err := s.AppByVerifier(ctx, f.app.VerifierHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the retired token: %v, want ErrNotFound", err)
	}
	if _, err := s.RetireVerifierToken(ctx, f.org.ID, f.app.ID, firstID, f.owner.ID, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retiring twice: %v, want ErrNotFound", err)
	}

	// Overlap 0: the replaced token goes at once.
	at = at.Add(time.Minute)
	fourth := f.verifier(f.app.ID, at)
	if prev, err := s.MintVerifierToken(ctx, fourth, at); err != nil || prev.ID != second.ID || !prev.ExpiresAt.Equal(at) {
		t.Fatalf("mint with overlap 0 = %+v, %v", prev, err)
	}
	if _, _, err := s.AppByVerifier(ctx, second.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the token replaced with overlap 0: %v, want ErrNotFound", err)
	}
	// An overlap that ended frees the way for the next rotation.
	fifth := f.verifier(f.app.ID, at)
	if _, err := s.MintVerifierToken(ctx, fifth, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	later := at.Add(2 * time.Minute)
	if list, err := s.ListVerifierTokens(ctx, f.org.ID, f.app.ID, later); err != nil || len(list) != 1 || list[0].ID != fifth.ID {
		t.Fatalf("tokens after the overlap = %+v, %v", list, err)
	}
	if _, err := s.MintVerifierToken(ctx, f.verifier(f.app.ID, later), later.Add(time.Hour)); err != nil {
		t.Fatalf("mint after the overlap ended: %v", err)
	}
	if _, _, err := s.AppByVerifier(ctx, fourth.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired token survived the next mint: %v", err)
	}

	// Last use, never moved back.
	must(t, s.TouchVerifierTokens(ctx, map[string]time.Time{fifth.ID: later}))
	must(t, s.TouchVerifierTokens(ctx, map[string]time.Time{fifth.ID: at}))
	if _, v, err := s.AppByVerifier(ctx, fifth.Hash); err != nil || v.LastUsedAt == nil || !v.LastUsedAt.Equal(later) {
		t.Fatalf("last used = %+v, %v", v, err)
	}

	// A deleted app: its tokens still find it (marked deleted), but it
	// mints and lists nothing.
	if _, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, later); err != nil {
		t.Fatal(err)
	}
	if a, _, err := s.AppByVerifier(ctx, fifth.Hash); err != nil || a.DeletedAt == nil {
		t.Fatalf("a deleted app's token: %+v, %v", a, err)
	}
	if _, err := s.MintVerifierToken(ctx, f.verifier(f.app.ID, later), later); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("mint for a deleted app: %v", err)
	}
	if _, err := s.ListVerifierTokens(ctx, f.org.ID, f.app.ID, later); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("list for a deleted app: %v", err)
	}
}

// Of two rotations at once with an overlap, one wins: the app never holds
// three live tokens.
func testConcurrentVerifierMints(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.MintVerifierToken(ctx, f.verifier(f.app.ID, t0), t0.Add(time.Hour))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrPreviousTokenLive):
			t.Fatalf("concurrent mint: %v", err)
		}
	}
	list, err := s.ListVerifierTokens(ctx, f.org.ID, f.app.ID, t0)
	if ok != 1 || err != nil || len(list) != 2 {
		t.Fatalf("%d mints succeeded; tokens %+v, %v", ok, list, err)
	}
}

// A user's tokens: their own to list and delete, bounded in number, never
// the last one, and gone with the user.
func testUserTokens(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	m := store.User{ID: id("usr"), OrgID: f.org.ID, Email: id("m") + "@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
	must(t, s.CreateUser(ctx, m, f.owner.ID))
	exp := t0.Add(time.Hour)
	tok := store.UserToken{ID: id("utk"), UserID: m.ID, OrgID: f.org.ID, Name: "ci", Hash: id("v1:u"), Prefix: "aku_abcdef", CreatedAt: t0, ExpiresAt: &exp}
	must(t, s.CreateUserToken(ctx, tok))
	if u, got, err := s.UserByToken(ctx, tok.Hash); err != nil || u.ID != m.ID || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("UserByToken = %+v, %+v, %v", u, got, err)
	}
	list, err := s.ListUserTokens(ctx, m.ID, t0)
	if err != nil || len(list) != 2 || list[0].Name != store.FirstUserTokenName || list[1].ID != tok.ID {
		t.Fatalf("ListUserTokens = %+v, %v", list, err)
	}
	if list, err := s.ListUserTokens(ctx, m.ID, exp); err != nil || len(list) != 1 {
		t.Fatalf("ListUserTokens after the expiry = %+v, %v", list, err)
	}
	// The owner cannot delete the member's token by its id.
	if err := s.DeleteUserToken(ctx, f.owner.ID, tok.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting another user's token: %v, want ErrNotFound", err)
	}
	// Revoking a token ends the console sessions started with it.
	must(t, s.CreateConsoleSession(ctx, store.ConsoleSession{ID: id("sess"), UserID: m.ID, TokenID: tok.ID, CreatedAt: t0, ExpiresAt: exp}, ""))
	keep := store.ConsoleSession{ID: id("sess"), UserID: m.ID, TokenID: list[0].ID, CreatedAt: t0, ExpiresAt: exp}
	must(t, s.CreateConsoleSession(ctx, keep, ""))
	must(t, s.DeleteUserToken(ctx, m.ID, tok.ID, t0))
	if _, _, err := s.UserByToken(ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a revoked token: %v", err)
	}
	if _, _, err := s.ConsoleSession(ctx, keep.ID, t0); err != nil {
		t.Fatalf("another token's session ended too: %v", err)
	}
	if err := s.DeleteUserToken(ctx, m.ID, list[0].ID, t0); !errors.Is(err, store.ErrLastToken) {
		t.Fatalf("deleting the last token: %v, want ErrLastToken", err)
	}
	// Bounded.
	for i := 1; i < store.MaxUserTokens; i++ {
		must(t, s.CreateUserToken(ctx, store.UserToken{ID: id("utk"), UserID: m.ID, OrgID: f.org.ID, Name: "n", Hash: id("v1:u"), CreatedAt: t0}))
	}
	if err := s.CreateUserToken(ctx, store.UserToken{ID: id("utk"), UserID: m.ID, OrgID: f.org.ID, Name: "n", Hash: id("v1:u"), CreatedAt: t0}); !errors.Is(err, store.ErrTooManyTokens) {
		t.Fatalf("token %d: %v, want ErrTooManyTokens", store.MaxUserTokens+1, err)
	}
	// Gone with the user.
	if _, err := s.DeleteUser(ctx, f.org.ID, m.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UserByToken(ctx, m.TokenHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted user's token: %v", err)
	}
	if list, err := s.ListUserTokens(ctx, m.ID, t0); err != nil || len(list) != 0 {
		t.Fatalf("a deleted user's tokens = %+v, %v", list, err)
	}
	if err := s.CreateUserToken(ctx, store.UserToken{ID: id("utk"), UserID: m.ID, OrgID: f.org.ID, Name: "n", Hash: id("v1:u"), CreatedAt: t0}); !errors.Is(err, store.ErrCreatorGone) {
		t.Fatalf("a token for a deleted user: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
