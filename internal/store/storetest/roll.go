package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func (f fixture) roll(oldID string, at, oldUntil time.Time) store.KeyRoll {
	return store.KeyRoll{
		OrgID: f.org.ID, OldID: oldID, OldExpiresAt: oldUntil,
		New:  store.Key{ID: id("key"), Prefix: "cak_newkey", Hash: id("v1:h"), ExpiresAt: at.Add(30 * 24 * time.Hour), CreatedAt: at, CreatedBy: f.owner.ID},
		Seal: func(name string) ([]byte, error) { return []byte("sealed for " + name), nil },
	}
}

// A roll links the keys, shortens the old one's expiry (never lengthens
// it), keeps the name unique among keys not rolled away, writes one
// key.expiry_changed event, and refuses keys that are not active.
func testRollKey(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	old := f.key(t, f.app.ID, f.owner.ID, "ci", t0.Add(24*time.Hour))
	at := t0.Add(time.Minute)
	head, _ := s.EventHead(ctx)
	r, err := s.RollKey(ctx, f.roll(old.ID, at, at.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Old.RolledTo != r.New.ID || r.New.RolledFrom != old.ID || r.New.Name != "ci" || r.New.AppID != f.app.ID || !r.Old.ExpiresAt.Equal(at.Add(time.Hour)) || len(r.Secrets) != 0 {
		t.Fatalf("RollKey = %+v", r)
	}
	got, _ := s.GetKey(ctx, f.org.ID, r.New.ID)
	if got.RolledFrom != old.ID || got.Name != "ci" {
		t.Fatalf("new key read back %+v", got)
	}
	evs, _, err := s.EventsAfter(ctx, f.app.ID, head, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != store.EventKeyExpiryChanged || evs[0].KeyID != old.ID || evs[0].ExpiresAt == nil || !evs[0].ExpiresAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("events after the roll = %+v, %v", evs, err)
	}
	// The name is the new key's alone now.
	dup := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: "ci", Prefix: "cak_x", Hash: id("h"), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateKey(ctx, dup, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second live key named ci: %v", err)
	}
	if _, err := s.RollKey(ctx, f.roll(old.ID, at, at.Add(time.Hour))); !errors.Is(err, store.ErrKeyRolled) {
		t.Fatalf("rolling a rolled key: %v", err)
	}
	// A later roll never extends: the new key, expiring in 30 days, rolled
	// with a year of overlap keeps its own expiry, and no event is written.
	head, _ = s.EventHead(ctx)
	r2, err := s.RollKey(ctx, f.roll(r.New.ID, at, at.Add(365*24*time.Hour)))
	if err != nil || !r2.Old.ExpiresAt.Equal(r.New.ExpiresAt) {
		t.Fatalf("roll with a long overlap: %+v, %v", r2, err)
	}
	if evs, _, _ := s.EventsAfter(ctx, f.app.ID, head, 10); len(evs) != 0 {
		t.Fatalf("events for an unchanged expiry: %+v", evs)
	}
	// Overlap 0 revokes, with a key.revoked event.
	rv := f.roll(r2.New.ID, at, at)
	rv.RevokeOld = true
	r3, err := s.RollKey(ctx, rv)
	if err != nil || r3.Old.RevokedAt == nil {
		t.Fatalf("roll without overlap: %+v, %v", r3, err)
	}
	if _, err := s.RollKey(ctx, f.roll(r2.New.ID, at, at)); !errors.Is(err, store.ErrKeyRevoked) {
		t.Fatalf("rolling a revoked key: %v", err)
	}
	exp := f.key(t, f.app.ID, f.owner.ID, "exp", t0.Add(time.Second))
	if _, err := s.RollKey(ctx, f.roll(exp.ID, at, at.Add(time.Hour))); !errors.Is(err, store.ErrKeyExpired) {
		t.Fatalf("rolling an expired key: %v", err)
	}
	other := setup(t, s)
	if _, err := s.RollKey(ctx, other.roll(r3.New.ID, at, at.Add(time.Hour))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another organization rolls a key: %v", err)
	}
	if _, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RollKey(ctx, f.roll(r3.New.ID, at, at.Add(time.Hour))); !errors.Is(err, store.ErrOrphaned) {
		t.Fatalf("rolling an orphaned key: %v", err)
	}
}

// Secrets that hold the old key, and the one the roll names, get the new
// key; a named secret that holds anything else is left alone and the roll
// does not happen.
func testRollSecrets(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	old := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: "saved", Prefix: "cak_abcdef", Hash: id("v1:h"), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateKey(ctx, old, &store.Secret{OrgID: f.org.ID, Name: "A", Ciphertext: []byte("old"), CreatedAt: t0, CreatedBy: f.owner.ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSecret(ctx, store.Secret{OrgID: f.org.ID, Name: "HAND", Ciphertext: []byte("by hand"), CreatedAt: t0, CreatedBy: f.owner.ID}); err != nil {
		t.Fatal(err)
	}
	bad := f.roll(old.ID, t0, t0.Add(time.Minute))
	bad.SaveAs = "HAND"
	if _, err := s.RollKey(ctx, bad); !errors.Is(err, store.ErrSecretConflict) {
		t.Fatalf("roll into a secret set by hand: %v", err)
	}
	if k, _ := s.GetKey(ctx, f.org.ID, old.ID); k.RolledTo != "" || !k.ExpiresAt.Equal(old.ExpiresAt) {
		t.Fatalf("a refused roll changed the key: %+v", k)
	}
	good := f.roll(old.ID, t0, t0.Add(time.Minute))
	good.SaveAs = "B"
	r, err := s.RollKey(ctx, good)
	if err != nil || len(r.Secrets) != 2 || r.Secrets[0] != "A" || r.Secrets[1] != "B" {
		t.Fatalf("RollKey secrets = %v, %v", r.Secrets, err)
	}
	for name, want := range map[string]string{"A": "sealed for A", "B": "sealed for B", "HAND": "by hand"} {
		sec, err := s.ReadSecret(ctx, f.org.ID, name, f.owner.ID, t0)
		if err != nil || string(sec.Ciphertext) != want {
			t.Fatalf("secret %s = %q, %v; want %q", name, sec.Ciphertext, err, want)
		}
	}
	r2, err := s.RollKey(ctx, f.roll(r.New.ID, t0, t0.Add(time.Minute)))
	if err != nil || len(r2.Secrets) != 2 {
		t.Fatalf("second roll secrets = %v, %v", r2.Secrets, err)
	}
	// The list says which key each holds and when a roll last changed it;
	// a value set by hand holds none and never changed.
	list, err := s.ListSecrets(ctx, f.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range list {
		switch sec.Name {
		case "A", "B":
			if sec.KeyID != r2.New.ID || sec.UpdatedAt == nil || !sec.UpdatedAt.Equal(t0) {
				t.Errorf("secret %s lists key %q updated %v; want %s, updated by the roll", sec.Name, sec.KeyID, sec.UpdatedAt, r2.New.ID)
			}
		case "HAND":
			if sec.KeyID != "" || sec.UpdatedAt != nil {
				t.Errorf("a secret set by hand lists key %q updated %v", sec.KeyID, sec.UpdatedAt)
			}
		}
	}
}

// Of concurrent rolls of one key exactly one succeeds; the others are
// ErrKeyRolled.
func testConcurrentRolls(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "k", t0.Add(24*time.Hour))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.RollKey(ctx, f.roll(k.ID, t0, t0.Add(time.Hour))) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrKeyRolled):
			t.Fatalf("a concurrent roll failed with %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d rolls succeeded, want 1: %v", won, errs)
	}
	keys, err := s.ListKeys(ctx, store.KeyFilter{OrgID: f.org.ID, AppID: f.app.ID})
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys after concurrent rolls = %d, %v; want the old and one new", len(keys), err)
	}
}
