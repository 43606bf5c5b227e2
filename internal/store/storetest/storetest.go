// Package storetest is the contract every store implementation passes: the
// same suite runs on SQLite and on PostgreSQL.
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

// Open returns an empty store for one test.
type Open func(t *testing.T) *store.Store

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// Run runs the contract suite.
func Run(t *testing.T, open Open) {
	t.Run("OrgsUsersApps", func(t *testing.T) { testOrgsUsersApps(t, open(t)) })
	t.Run("KeysLifecycle", func(t *testing.T) { testKeysLifecycle(t, open(t)) })
	t.Run("OrphanOnAppDelete", func(t *testing.T) { testOrphanOnAppDelete(t, open(t)) })
	t.Run("OrphanOnCreatorDelete", func(t *testing.T) { testOrphanOnCreatorDelete(t, open(t)) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, open(t)) })
	t.Run("EventsCursor", func(t *testing.T) { testEventsCursor(t, open(t)) })
	t.Run("ConcurrentRevokes", func(t *testing.T) { testConcurrentRevokes(t, open(t)) })
	t.Run("ConcurrentEventWriters", func(t *testing.T) { testConcurrentEventWriters(t, open(t)) })
	t.Run("CreateRacesDelete", func(t *testing.T) { testCreateRacesDelete(t, open(t)) })
	t.Run("Bootstrap", func(t *testing.T) { testBootstrap(t, open(t)) })
	t.Run("ConsoleSessions", func(t *testing.T) { testConsoleSessions(t, open(t)) })
	t.Run("ConsoleSessionReplaces", func(t *testing.T) { testConsoleSessionReplaces(t, open(t)) })
	t.Run("ConsoleSessionExpiryAndSweep", func(t *testing.T) { testConsoleSessionExpiryAndSweep(t, open(t)) })
	t.Run("ConsoleSessionsEndWithTheirUser", func(t *testing.T) { testConsoleSessionsEndWithTheirUser(t, open(t)) })
	t.Run("ConcurrentConsoleSessionFlash", func(t *testing.T) { testConcurrentConsoleSessionFlash(t, open(t)) })
}

type fixture struct {
	s     *store.Store
	org   store.Org
	owner store.User
	app   store.App
}

var idSeq atomic.Int64

func id(prefix string) string { return fmt.Sprintf("%s_%08d", prefix, idSeq.Add(1)) }

func setup(t *testing.T, s *store.Store) fixture {
	t.Helper()
	ctx := context.Background()
	org := store.Org{ID: id("org"), Name: id("name"), CreatedAt: t0}
	owner := store.User{ID: id("usr"), OrgID: org.ID, Email: id("owner") + "@example.com", Role: "owner", TokenHash: id("tok"), CreatedAt: t0}
	if err := s.CreateOrg(ctx, org, owner, "admin"); err != nil {
		t.Fatal(err)
	}
	app := store.App{ID: id("app"), OrgID: org.ID, Name: "fn", Kind: "cloud_function", VerifierHash: id("ver"), CreatedAt: t0, CreatedBy: owner.ID}
	if err := s.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	return fixture{s: s, org: org, owner: owner, app: app}
}

func (f fixture) key(t *testing.T, appID, creator, name string, expires time.Time) store.Key {
	t.Helper()
	k := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: appID, Name: name, Prefix: "cak_abcdef", Hash: id("v1:h"),
		ExpiresAt: expires, CreatedAt: t0, CreatedBy: creator}
	if err := f.s.CreateKey(context.Background(), k, nil); err != nil {
		t.Fatal(err)
	}
	return k
}

func testOrgsUsersApps(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	if err := s.CreateOrg(ctx, store.Org{ID: id("org"), Name: f.org.Name, CreatedAt: t0},
		store.User{ID: id("usr"), Email: "x@example.com", Role: "owner", TokenHash: id("tok"), CreatedAt: t0}, "admin"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate org name: %v, want ErrConflict", err)
	}
	u, err := s.UserByTokenHash(ctx, f.owner.TokenHash)
	if err != nil || u.ID != f.owner.ID || u.Role != "owner" {
		t.Fatalf("UserByTokenHash = %+v, %v", u, err)
	}
	m := store.User{ID: id("usr"), OrgID: f.org.ID, Email: "m@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
	if err := s.CreateUser(ctx, m, f.owner.ID); err != nil {
		t.Fatal(err)
	}
	dup := m
	dup.ID, dup.TokenHash = id("usr"), id("tok")
	if err := s.CreateUser(ctx, dup, f.owner.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate email: %v", err)
	}
	users, err := s.ListUsers(ctx, f.org.ID)
	if err != nil || len(users) != 2 {
		t.Fatalf("ListUsers = %d, %v", len(users), err)
	}
	app2 := f.app
	app2.ID, app2.VerifierHash = id("app"), id("ver")
	if err := s.CreateApp(ctx, app2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate app name: %v", err)
	}
	got, err := s.AppByVerifierHash(ctx, f.app.VerifierHash)
	if err != nil || got.ID != f.app.ID {
		t.Fatalf("AppByVerifierHash = %+v, %v", got, err)
	}
	other := setup(t, s)
	if _, err := s.GetApp(ctx, other.org.ID, f.app.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetApp across orgs: %v", err)
	}
	if _, err := s.DeleteUser(ctx, other.org.ID, m.ID, "x", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteUser across orgs: %v", err)
	}
	if _, err := s.DeleteUser(ctx, f.org.ID, m.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByTokenHash(ctx, m.TokenHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted user's token still works: %v", err)
	}
	// A deleted user's email may be used again.
	again := m
	again.ID, again.TokenHash = id("usr"), id("tok")
	if err := s.CreateUser(ctx, again, f.owner.ID); err != nil {
		t.Fatalf("re-create user with freed email: %v", err)
	}
}

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
	if a, err := s.AppByVerifierHash(ctx, f.app.VerifierHash); err != nil || a.DeletedAt == nil {
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

func testSecrets(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	sec := store.Secret{OrgID: f.org.ID, Name: "API_KEY", Ciphertext: []byte{1, 2, 3}, CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateSecret(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSecret(ctx, sec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate secret: %v", err)
	}
	got, err := s.ReadSecret(ctx, f.org.ID, "API_KEY", f.owner.ID, t0)
	if err != nil || string(got.Ciphertext) != string(sec.Ciphertext) {
		t.Fatalf("ReadSecret = %+v, %v", got, err)
	}
	other := setup(t, s)
	if _, err := s.ReadSecret(ctx, other.org.ID, "API_KEY", other.owner.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read across orgs: %v", err)
	}
	list, _ := s.ListSecrets(ctx, f.org.ID)
	if len(list) != 1 || list[0].Ciphertext != nil {
		t.Fatalf("ListSecrets = %+v", list)
	}
	// A key saved as a secret: both or neither.
	k := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: "k", Prefix: "p", Hash: id("h"), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateKey(ctx, k, &sec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("key with taken secret name: %v", err)
	}
	if _, err := s.GetKey(ctx, f.org.ID, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("key half-written when its secret failed")
	}
	if err := s.DeleteSecret(ctx, f.org.ID, "API_KEY", f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(ctx, f.org.ID, "API_KEY", f.owner.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	audit, _ := s.ListAudit(ctx, f.org.ID, 100)
	reads := 0
	for _, a := range audit {
		if a.Action == "secret.read" {
			reads++
		}
	}
	if reads != 1 {
		t.Fatalf("secret.read audit records = %d, want 1", reads)
	}
}

func testEventsCursor(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	other := setup(t, s)
	for i := 0; i < 5; i++ {
		k := f.key(t, f.app.ID, f.owner.ID, fmt.Sprint("k", i), t0.Add(time.Hour))
		o := other.key(t, other.app.ID, other.owner.ID, fmt.Sprint("o", i), t0.Add(time.Hour))
		at := t0.Add(time.Duration(i) * time.Hour)
		if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, at); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RevokeKey(ctx, other.org.ID, o.ID, other.owner.ID, false, at); err != nil {
			t.Fatal(err)
		}
	}
	head, _ := s.EventHead(ctx)
	events, next, err := s.EventsAfter(ctx, f.app.ID, 0, 3)
	if err != nil || len(events) != 3 || next != events[2].Seq {
		t.Fatalf("page 1 = %d events, next %d, %v", len(events), next, err)
	}
	for _, e := range events {
		if e.AppID != f.app.ID {
			t.Fatalf("another app's event: %+v", e)
		}
	}
	events, next, err = s.EventsAfter(ctx, f.app.ID, next, 3)
	if err != nil || len(events) != 2 || next != head {
		t.Fatalf("page 2 = %d events, next %d (head %d), %v", len(events), next, head, err)
	}
	events, next2, _ := s.EventsAfter(ctx, f.app.ID, next, 3)
	if len(events) != 0 || next2 != next {
		t.Fatalf("caught up: %d events, next %d", len(events), next2)
	}
	if n, err := s.PruneEvents(ctx, t0.Add(2*time.Hour)); err != nil || n != 4 {
		t.Fatalf("PruneEvents = %d, %v", n, err)
	}
	if _, _, err := s.EventsAfter(ctx, f.app.ID, 0, 10); !errors.Is(err, store.ErrCursorExpired) {
		t.Fatalf("old cursor: %v", err)
	}
	events, _, err = s.EventsAfter(ctx, f.app.ID, 4, 10)
	if err != nil || len(events) != 3 {
		t.Fatalf("cursor at the pruned edge: %d, %v", len(events), err)
	}

	// A cursor past the head (the database was restored, or failed over
	// and lost its last commits) would skip every event numbered up to it:
	// it is refused, and the head itself is fine.
	head, _ = s.EventHead(ctx)
	for _, after := range []int64{head + 1, head + 1000} {
		if _, _, err := s.EventsAfter(ctx, f.app.ID, after, 10); !errors.Is(err, store.ErrCursorAhead) {
			t.Fatalf("cursor %d past the head %d: %v; want ErrCursorAhead", after, head, err)
		}
	}
	if events, next, err := s.EventsAfter(ctx, f.app.ID, head, 10); err != nil || len(events) != 0 || next != head {
		t.Fatalf("cursor at the head: %d events, next %d, %v", len(events), next, err)
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

// testConcurrentEventWriters has many writers commit events while a reader
// follows the feed with a cursor; the reader must see every event exactly
// once and in order.
func testConcurrentEventWriters(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	const writers, perWriter = 8, 15
	keys := make([][]store.Key, writers)
	for w := range keys {
		for i := 0; i < perWriter; i++ {
			keys[w] = append(keys[w], f.key(t, f.app.ID, f.owner.ID, fmt.Sprintf("w%d-%d", w, i), t0.Add(time.Hour)))
		}
	}
	start, _ := s.EventHead(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for _, k := range keys[w] {
				if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, t0); err != nil {
					t.Errorf("revoke: %v", err)
				}
			}
		}(w)
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	cursor, last := start, start
	finished := false
	for i := 0; i < 100000 && len(seen) < writers*perWriter; i++ {
		events, next, err := s.EventsAfter(ctx, f.app.ID, cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Seq <= last {
				t.Fatalf("event %d after %d: out of order", e.Seq, last)
			}
			if seen[e.KeyID] {
				t.Fatalf("event for %s twice", e.KeyID)
			}
			seen[e.KeyID], last = true, e.Seq
		}
		cursor = next
		if finished && len(events) == 0 {
			break
		}
		select {
		case <-done:
			finished = true
		default:
		}
	}
	<-done
	if len(seen) != writers*perWriter {
		t.Fatalf("reader saw %d events, want %d", len(seen), writers*perWriter)
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

func testBootstrap(t *testing.T, s *store.Store) {
	ctx := context.Background()
	mk := func() (store.Org, store.User) {
		org := store.Org{ID: id("org"), Name: id("default"), CreatedAt: t0}
		return org, store.User{ID: id("usr"), OrgID: org.ID, Email: "owner@appkeys.local", Role: "owner", TokenHash: id("tok"), CreatedAt: t0}
	}
	org, owner := mk()
	// A failing persist (the token files) leaves the store empty.
	created, err := s.Bootstrap(ctx, id("adm"), org, owner, func() error { return errors.New("disk full") })
	if err == nil || created {
		t.Fatalf("bootstrap with failing persist = %v, %v", created, err)
	}
	if empty, _ := s.IsEmpty(ctx); !empty {
		t.Fatal("store not empty after a failed bootstrap")
	}
	// Concurrent bootstraps (replicas starting together): exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			org, owner := mk()
			created, err := s.Bootstrap(ctx, id("adm"), org, owner, func() error { return nil })
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Errorf("bootstrap: %v", err)
			}
			if created {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d bootstraps won, want 1", wins.Load())
	}
}
