package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// A database made before console sessions were stored (0001 only) gets
// 0002 when a newer binary opens it, and keeps its data.
func TestMigrationsApplyToAnExistingDatabase(t *testing.T) {
	for _, tc := range []struct {
		name, driver string
		dsn          func(t *testing.T) (open, raw string)
	}{
		{"sqlite", "sqlite", func(t *testing.T) (string, string) {
			path := filepath.Join(t.TempDir(), "appkeys.db")
			return path, "file:" + path
		}},
		{"postgres", "pgx", func(t *testing.T) (string, string) {
			u := pgtest.NewDatabase(t)
			return u, u
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dsn, raw := tc.dsn(t)
			s, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			org := store.Org{ID: "org_1", Name: "Default", CreatedAt: storetestNow()}
			owner := store.User{ID: "usr_1", OrgID: org.ID, Email: "o@example.com", Role: "owner", TokenHash: "v1:def", CreatedAt: storetestNow()}
			if _, err := s.Bootstrap(ctx, "v1:abc", org, owner, func() error { return nil }); err != nil {
				t.Fatal(err)
			}
			s.Close()
			// Take the database back to what the 0001 binary left.
			db, err := sql.Open(tc.driver, raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`DROP TABLE console_sessions`, `DELETE FROM schema_migrations WHERE version = '0002_console_sessions'`} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			db.Close()

			s, err = store.Open(ctx, dsn)
			if err != nil {
				t.Fatalf("open a 0001 database: %v", err)
			}
			defer s.Close()
			sess := store.ConsoleSession{ID: "h1", UserID: owner.ID, Sealed: []byte{1}, CreatedAt: storetestNow(), ExpiresAt: storetestNow().Add(time.Hour)}
			if err := s.CreateConsoleSession(ctx, sess); err != nil {
				t.Fatalf("console sessions after migrating: %v", err)
			}
			if u, err := s.UserByTokenHash(ctx, owner.TokenHash); err != nil || u.ID != owner.ID {
				t.Fatalf("data before the migration: %+v, %v", u, err)
			}
		})
	}
}
