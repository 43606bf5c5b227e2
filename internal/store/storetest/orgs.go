package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/appkeys/appkeys/internal/store"
)

func testOrgsUsersApps(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	if err := s.CreateOrg(ctx, store.Org{ID: id("org"), Name: f.org.Name, CreatedAt: t0},
		store.User{ID: id("usr"), Email: "x@example.com", Role: "owner", TokenHash: id("tok"), CreatedAt: t0}, "admin"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate org name: %v, want ErrConflict", err)
	}
	u, tok, err := s.UserByToken(ctx, f.owner.TokenHash)
	if err != nil || u.ID != f.owner.ID || u.Role != "owner" || tok.UserID != f.owner.ID || tok.Name != store.FirstUserTokenName || tok.ExpiresAt != nil {
		t.Fatalf("UserByToken = %+v, %+v, %v", u, tok, err)
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
	got, v, err := s.AppByVerifier(ctx, f.app.VerifierHash)
	if err != nil || got.ID != f.app.ID || got.OrgID != f.org.ID || v.AppID != f.app.ID || v.ExpiresAt != nil {
		t.Fatalf("AppByVerifier = %+v, %+v, %v", got, v, err)
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
	if _, _, err := s.UserByToken(ctx, m.TokenHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted user's token still works: %v", err)
	}
	// A deleted user's email may be used again.
	again := m
	again.ID, again.TokenHash = id("usr"), id("tok")
	if err := s.CreateUser(ctx, again, f.owner.ID); err != nil {
		t.Fatalf("re-create user with freed email: %v", err)
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
