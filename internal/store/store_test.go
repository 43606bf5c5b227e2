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
	if err := s.AddAdmin(ctx, "v1:abc", storetestNow()); err != nil {
		t.Fatal(err)
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
