package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func testKeysLifecycle(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "ci", t0.Add(24*time.Hour))
	old := f.key(t, f.app.ID, f.owner.ID, "old", t0.Add(time.Hour))
	dup := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: "ci", Prefix: "cak_x", Hash: id("h"), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateKey(ctx, dup, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate key name: %v", err)
	}
	got, err := s.KeyByHash(ctx, "nope", k.Hash)
	if err != nil || got.ID != k.ID || got.AppName != f.app.Name || got.CreatorEmail != f.owner.Email {
		t.Fatalf("KeyByHash = %+v, %v", got, err)
	}
	vk, err := s.KeyForVerify(ctx, "nope", k.Hash)
	if err != nil || vk.ID != k.ID || vk.AppID != k.AppID || vk.Name != k.Name || !vk.ExpiresAt.Equal(k.ExpiresAt) || vk.RevokedAt != nil || vk.OrphanedAt != nil {
		t.Fatalf("KeyForVerify = %+v, %v", vk, err)
	}
	if _, err := s.KeyForVerify(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("KeyForVerify(unknown) = %v; want ErrNotFound", err)
	}
	later := t0.Add(2 * time.Hour)
	for sel, want := range map[store.KeySelect]int{store.AnyKey: 2, store.UnexpiredKeys: 1, store.ExpiredKeys: 1, store.OrphanedKeys: 0} {
		keys, err := s.ListKeys(ctx, store.KeyFilter{OrgID: f.org.ID, AppID: f.app.ID, Select: sel, Now: later})
		if err != nil || len(keys) != want {
			t.Fatalf("ListKeys(%d) = %d keys, %v; want %d", sel, len(keys), err, want)
		}
	}
	app, err := s.GetApp(ctx, f.org.ID, f.app.ID, later)
	if err != nil || app.ActiveKeys != 1 || app.OrphanedKeys != 0 {
		t.Fatalf("GetApp counts = %+v, %v", app, err)
	}
	if err := s.TouchKeys(ctx, map[string]time.Time{k.ID: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchKeys(ctx, map[string]time.Time{k.ID: t0}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetKey(ctx, f.org.ID, k.ID)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last used = %v, want %v (never moved back)", got.LastUsedAt, t0.Add(time.Minute))
	}
	// A flush larger than one transaction's share reaches every key: 250
	// ids that sort before the real one put it in the third chunk.
	many := map[string]time.Time{k.ID: t0.Add(2 * time.Minute)}
	for i := range 250 {
		many[fmt.Sprintf("key_!%03d", i)] = t0
	}
	if err := s.TouchKeys(ctx, many); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetKey(ctx, f.org.ID, k.ID)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("last used after a large flush = %v, want %v", got.LastUsedAt, t0.Add(2*time.Minute))
	}
	other := setup(t, s)
	if _, err := s.RevokeKey(ctx, other.org.ID, k.ID, other.owner.ID, true, later); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke across orgs: %v", err)
	}
	if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, later); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, later); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	got, _ = s.KeyByHash(ctx, k.Hash)
	if got.RevokedAt == nil {
		t.Fatal("revoked key has no revoked_at")
	}
	if vk, _ := s.KeyForVerify(ctx, k.Hash); vk.RevokedAt == nil {
		t.Fatal("KeyForVerify: revoked key has no revoked_at")
	}
	keys, _ := s.ListKeys(ctx, store.KeyFilter{OrgID: f.org.ID, Now: later})
	if len(keys) != 1 || keys[0].ID != old.ID {
		t.Fatalf("after revoke, list = %+v", keys)
	}
	// The name of a revoked key is free again.
	f.key(t, f.app.ID, f.owner.ID, "ci", t0.Add(24*time.Hour))
	events, _, err := s.EventsAfter(ctx, f.app.ID, 0, 100)
	if err != nil || len(events) != 1 || events[0].Type != store.EventKeyRevoked || events[0].KeyID != k.ID {
		t.Fatalf("events = %+v, %v", events, err)
	}
	audit, err := s.ListAudit(ctx, f.org.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, a := range audit {
		actions[a.Action]++
	}
	if actions["key.create"] != 3 || actions["key.revoke"] != 1 || actions["app.create"] != 1 {
		t.Fatalf("audit actions = %v", actions)
	}
}

func testOrphanOnAppDelete(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	k1 := f.key(t, f.app.ID, f.owner.ID, "a", t0.Add(time.Hour))
	k2 := f.key(t, f.app.ID, f.owner.ID, "b", t0.Add(time.Hour))
	if _, err := s.RevokeKey(ctx, f.org.ID, k2.ID, f.owner.ID, false, t0); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, t0)
	if err != nil || n != 1 {
		t.Fatalf("DeleteApp = %d, %v", n, err)
	}
	if _, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if a, _, err := s.AppByVerifier(ctx, f.app.VerifierHash); err != nil || a.DeletedAt == nil {
		t.Fatalf("deleted app by verifier = %+v, %v; want it, marked deleted", a, err)
	}
	keys, err := s.ListKeys(ctx, store.KeyFilter{OrgID: f.org.ID, Select: store.OrphanedKeys, Now: t0})
	if err != nil || len(keys) != 1 || keys[0].ID != k1.ID || keys[0].OrphanReason != store.OrphanAppDeleted {
		t.Fatalf("orphaned = %+v, %v", keys, err)
	}
	if err := s.CreateKey(ctx, store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: "late", Prefix: "p", Hash: id("h"),
		ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: f.owner.ID}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key for a deleted app: %v", err)
	}
	if _, err := s.RevokeKey(ctx, f.org.ID, k1.ID, f.owner.ID, false, t0); !errors.Is(err, store.ErrOrphaned) {
		t.Fatalf("revoke orphaned without permission: %v", err)
	}
	if _, err := s.RevokeKey(ctx, f.org.ID, k1.ID, f.owner.ID, true, t0); err != nil {
		t.Fatalf("revoke orphaned with permission: %v", err)
	}
	events, _, _ := s.EventsAfter(ctx, f.app.ID, 0, 100)
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	want := []string{store.EventKeyRevoked, store.EventKeyOrphaned, store.EventAppDeleted, store.EventKeyRevoked}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("event types = %v, want %v", types, want)
	}
}

func testOrphanOnCreatorDelete(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	m := store.User{ID: id("usr"), OrgID: f.org.ID, Email: "dev@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
	if err := s.CreateUser(ctx, m, f.owner.ID); err != nil {
		t.Fatal(err)
	}
	mine := f.key(t, f.app.ID, m.ID, "mine", t0.Add(time.Hour))
	theirs := f.key(t, f.app.ID, f.owner.ID, "theirs", t0.Add(time.Hour))
	if n, err := s.DeleteUser(ctx, f.org.ID, m.ID, f.owner.ID, t0); err != nil || n != 1 {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	got, _ := s.GetKey(ctx, f.org.ID, mine.ID)
	if got.OrphanReason != store.OrphanCreatorDeleted || got.CreatorEmail != m.Email {
		t.Fatalf("creator's key = %+v", got)
	}
	got, _ = s.GetKey(ctx, f.org.ID, theirs.ID)
	if got.OrphanedAt != nil {
		t.Fatal("another user's key was orphaned")
	}
	// An app deleted later keeps the first orphan reason and emits no second
	// key.orphaned for the key.
	if _, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetKey(ctx, f.org.ID, mine.ID)
	if got.OrphanReason != store.OrphanCreatorDeleted {
		t.Fatalf("orphan reason changed to %q", got.OrphanReason)
	}
	events, _, _ := s.EventsAfter(ctx, f.app.ID, 0, 100)
	if len(events) != 3 {
		t.Fatalf("events = %+v, want orphaned(mine), orphaned(theirs), app.deleted", events)
	}
}

// testCreateRacesDelete creates keys while their app and their creator are
// deleted: afterwards no key may be active on a deleted app or by a deleted
// creator, whichever transaction won.
func testCreateRacesDelete(t *testing.T, s *store.Store) {
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		f := setup(t, s)
		m := store.User{ID: id("usr"), OrgID: f.org.ID, Email: id("m") + "@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
		if err := s.CreateUser(ctx, m, f.owner.ID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				creator := f.owner.ID
				if i%2 == 0 {
					creator = m.ID
				}
				k := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: fmt.Sprint("k", i), Prefix: "p", Hash: id("h"),
					ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: creator}
				err := s.CreateKey(ctx, k, nil)
				if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrCreatorGone) {
					t.Errorf("create: %v", err)
				}
			}(i)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := s.DeleteUser(ctx, f.org.ID, m.ID, f.owner.ID, t0); err != nil {
				t.Errorf("delete user: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, t0); err != nil {
				t.Errorf("delete app: %v", err)
			}
		}()
		wg.Wait()
		keys, err := s.ListKeys(ctx, store.KeyFilter{OrgID: f.org.ID, Select: store.UnexpiredKeys, Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 0 {
			t.Fatalf("round %d: %d keys active on a deleted app", round, len(keys))
		}
	}
}

func testConcurrentRevokes(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "k", t0.Add(time.Hour))
	var ok, notFound atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, t0)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrNotFound):
				notFound.Add(1)
			default:
				t.Errorf("revoke: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || notFound.Load() != 19 {
		t.Fatalf("ok %d, not found %d; want 1 and 19", ok.Load(), notFound.Load())
	}
	events, _, _ := s.EventsAfter(ctx, f.app.ID, 0, 100)
	if len(events) != 1 {
		t.Fatalf("%d events for one revocation", len(events))
	}
}
