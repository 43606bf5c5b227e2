package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/store/pgtest"
	"github.com/appkeys/appkeys/internal/store/storetest"
)

func TestSQLiteContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store {
		s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "appkeys.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "appkeys.db")
	ctx := context.Background()
	s, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	org := store.Org{ID: "org_1", Name: "Default", CreatedAt: storetestNow()}
	owner := store.User{ID: "usr_1", OrgID: org.ID, Email: "o@example.com", Role: "owner", TokenHash: "v1:def", CreatedAt: storetestNow()}
	if created, err := s.Bootstrap(ctx, "v1:abc", org, owner, func() error { return nil }); err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v", created, err)
	}
	s.Close()
	s, err = store.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen (migrations must be idempotent): %v", err)
	}
	defer s.Close()
	if ok, err := s.IsAdmin(ctx, "v1:abc"); err != nil || !ok {
		t.Fatalf("IsAdmin after reopen = %v, %v", ok, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("database file: %v", err)
	}
}

func TestPostgresContract(t *testing.T) {
	pgtest.Require(t)
	storetest.Run(t, func(t *testing.T) *store.Store {
		s, err := store.Open(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
