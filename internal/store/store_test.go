package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/store/pgtest"
	"github.com/appkeys/appkeys/internal/store/storetest"
)

// openStore opens the store at dsn, closed when t ends.
func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store { return openStore(t, filepath.Join(t.TempDir(), "appkeys.db")) })
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "appkeys.db")
	ctx := context.Background()
	s, _ := bootstrapped(t, path)
	s.Close()
	s, err := store.Open(ctx, path)
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
	storetest.Run(t, func(t *testing.T) *store.Store { return openStore(t, pgtest.NewDatabase(t)) })
}

// migrationDB is a database of one dialect for the migration tests: dsn
// for store.Open, raw for database/sql with driver.
type migrationDB struct {
	name, driver, dsn, raw string
}

// migrationDBs makes a fresh database of each dialect, by name.
var migrationDBs = map[string]func(t *testing.T) migrationDB{
	"sqlite": func(t *testing.T) migrationDB {
		path := filepath.Join(t.TempDir(), "appkeys.db")
		return migrationDB{"sqlite", "sqlite", path, "file:" + path}
	},
	"postgres": func(t *testing.T) migrationDB {
		u := pgtest.NewDatabase(t)
		return migrationDB{"postgres", "pgx", u, u}
	},
}

// bootstrapped opens a fresh store with an organization and its owner.
func bootstrapped(t *testing.T, dsn string) (*store.Store, store.User) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	org := store.Org{ID: "org_1", Name: "Default", CreatedAt: storetestNow()}
	owner := store.User{ID: "usr_1", OrgID: org.ID, Email: "o@example.com", Role: "owner", TokenHash: "v1:def", CreatedAt: storetestNow()}
	if created, err := s.Bootstrap(ctx, "v1:abc", org, owner, func() error { return nil }); err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v", created, err)
	}
	return s, owner
}

func execAll(t *testing.T, driver, raw string, qs ...string) {
	t.Helper()
	db, err := sql.Open(driver, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range qs {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A database made before console sessions were stored (0001 only) gets
// 0002 and the later migrations when a newer binary opens it, and keeps
// its data.
func TestMigrationsApplyToAnExistingDatabase(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			db := migrationDBs[name](t)
			ctx := context.Background()
			// What the 0001 binary left: a bootstrapped organization.
			databaseAt(t, db, "0001")
			execAll(t, db.driver, db.raw, oldOrg...)

			s, err := store.Open(ctx, db.dsn)
			if err != nil {
				t.Fatalf("open a 0001 database: %v", err)
			}
			defer s.Close()
			sess := store.ConsoleSession{ID: "h1", UserID: "usr_1", Flash: "hello", CreatedAt: storetestNow(), ExpiresAt: storetestNow().Add(time.Hour)}
			if err := s.CreateConsoleSession(ctx, sess, ""); err != nil {
				t.Fatalf("console sessions after migrating: %v", err)
			}
			if got, _, err := s.ConsoleSession(ctx, sess.ID, storetestNow()); err != nil || got.Flash != "hello" {
				t.Fatalf("a session after migrating: %+v, %v", got, err)
			}
			if u, _, err := s.UserByToken(ctx, "v1:def"); err != nil || u.ID != "usr_1" {
				t.Fatalf("data before the migration: %+v, %v", u, err)
			}
		})
	}
}

// A request still running when the service closes its store gets a clear
// "unavailable" (503), not an unclassified error (500).
func TestClosedStoreIsUnavailable(t *testing.T) {
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "appkeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ctx := context.Background()
	if _, err := s.IsEmpty(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("IsEmpty on a closed store: %v, want ErrUnavailable", err)
	}
	// The verify path runs prepared statements, closed with the store.
	if _, err := s.KeyForVerify(ctx, "v1:h"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("KeyForVerify on a closed store: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.AppByVerifier(ctx, "v1:h"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("AppByVerifier on a closed store: %v, want ErrUnavailable", err)
	}
}
