package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// migrationDB is a database of one dialect for the migration tests: dsn
// for store.Open, raw for database/sql with driver.
type migrationDB struct {
	name, driver, dsn, raw string
	files                  []string // the SQLite files, to search
}

// migrationDBs makes a fresh database of each dialect, by name.
var migrationDBs = map[string]func(t *testing.T) migrationDB{
	"sqlite": func(t *testing.T) migrationDB {
		path := filepath.Join(t.TempDir(), "appkeys.db")
		return migrationDB{"sqlite", "sqlite", path, "file:" + path, []string{path, path + "-wal", path + "-shm"}}
	},
	"postgres": func(t *testing.T) migrationDB {
		u := pgtest.NewDatabase(t)
		return migrationDB{"postgres", "pgx", u, u, nil}
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
	if _, err := s.Bootstrap(ctx, "v1:abc", org, owner, func() error { return nil }); err != nil {
		t.Fatal(err)
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
// 0002 and 0003 when a newer binary opens it, and keeps its data.
func TestMigrationsApplyToAnExistingDatabase(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			db := migrationDBs[name](t)
			ctx := context.Background()
			s, owner := bootstrapped(t, db.dsn)
			s.Close()
			// Take the database back to what the 0001 binary left.
			execAll(t, db.driver, db.raw, `DROP TABLE console_sessions`,
				`DELETE FROM schema_migrations WHERE version IN ('0002_console_sessions', '0003_console_sessions_hold_no_secrets')`)

			s, err := store.Open(ctx, db.dsn)
			if err != nil {
				t.Fatalf("open a 0001 database: %v", err)
			}
			defer s.Close()
			sess := store.ConsoleSession{ID: "h1", UserID: owner.ID, Flash: "hello", CreatedAt: storetestNow(), ExpiresAt: storetestNow().Add(time.Hour)}
			if err := s.CreateConsoleSession(ctx, sess, ""); err != nil {
				t.Fatalf("console sessions after migrating: %v", err)
			}
			if got, _, err := s.ConsoleSession(ctx, sess.ID, storetestNow()); err != nil || got.Flash != "hello" {
				t.Fatalf("a session after migrating: %+v, %v", got, err)
			}
			if u, err := s.UserByTokenHash(ctx, owner.TokenHash); err != nil || u.ID != owner.ID {
				t.Fatalf("data before the migration: %+v, %v", u, err)
			}
		})
	}
}

// 0003 takes the sealed blobs of 0002 (user tokens and keys just created,
// sealed under a key derived from the master key) out of the database:
// their rows go, the column goes, and on SQLite no byte of them is left in
// the files, not even of rows an earlier logout deleted.
func TestMigration0003LeavesNoSealedBlob(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			db := migrationDBs[name](t)
			ctx := context.Background()
			s, owner := bootstrapped(t, db.dsn)
			s.Close()
			// Take the database back to what the 0002 binary left, with
			// two sessions, one of them since logged out.
			v2, err := os.ReadFile(filepath.Join("migrations", db.name, "0002_console_sessions.sql"))
			if err != nil {
				t.Fatal(err)
			}
			// 15 kB: past a page, so a deleted blob leaves whole free
			// pages behind, as a logged-out session's did.
			blob := func(n int) string {
				return fmt.Sprintf("'%x'", bytes.Repeat([]byte(fmt.Sprintf("SEALED-TOKEN-%d|", n)), 1000))
			}
			blobSQL := map[string]func(string) string{
				"sqlite":   func(hex string) string { return "x" + hex },
				"postgres": func(hex string) string { return `decode(` + hex + `, 'hex')` },
			}[db.name]
			qs := []string{`DROP TABLE console_sessions`, `DELETE FROM schema_migrations WHERE version = '0003_console_sessions_hold_no_secrets'`}
			var body []string
			for _, l := range strings.Split(string(v2), "\n") {
				if !strings.HasPrefix(strings.TrimSpace(l), "--") {
					body = append(body, l)
				}
			}
			for _, stmt := range strings.Split(strings.Join(body, "\n"), ";") {
				if q := strings.TrimSpace(stmt); q != "" {
					qs = append(qs, q)
				}
			}
			for i := 1; i <= 2; i++ {
				qs = append(qs, fmt.Sprintf(`INSERT INTO console_sessions (id, user_id, sealed, created_at, expires_at) VALUES ('h%d', '%s', %s, 1, 9999999999999999)`, i, owner.ID, blobSQL(blob(i))))
			}
			qs = append(qs, `DELETE FROM console_sessions WHERE id = 'h1'`)
			execAll(t, db.driver, db.raw, qs...)
			if db.files != nil {
				if !bytes.Contains(readAll(db.files), []byte("SEALED-TOKEN-2|")) {
					t.Fatalf("the 0002 blob is not in the files before the migration: read the wrong files?")
				}
			}

			s, err = store.Open(ctx, db.dsn)
			if err != nil {
				t.Fatalf("open a 0002 database: %v", err)
			}
			if _, _, err := s.ConsoleSession(ctx, "h2", storetestNow()); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a 0002 session after 0003: %v, want it gone", err)
			}
			s.Close()
			raw, err := sql.Open(db.driver, db.raw)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.ExecContext(ctx, `SELECT sealed FROM console_sessions`); err == nil {
				t.Errorf("console_sessions still has a sealed column")
			}
			raw.Close()
			if db.files != nil {
				for i := 1; i <= 2; i++ {
					if bytes.Contains(readAll(db.files), []byte(fmt.Sprintf("SEALED-TOKEN-%d|", i))) {
						t.Errorf("session %d's sealed blob is still in the SQLite files after 0003", i)
					}
				}
			}
		})
	}
}

func readAll(paths []string) []byte {
	var out []byte
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, b...)
		}
	}
	return out
}
