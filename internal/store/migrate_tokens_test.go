package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/store"
)

// databaseAt makes db what a binary whose newest migration is upTo (a
// number, "0002") left behind: the migration files up to it, applied from
// this tree and recorded as the store records them.
func databaseAt(t *testing.T, db migrationDB, upTo string) {
	t.Helper()
	dir := filepath.Join("migrations", db.name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`}
	for _, e := range entries {
		version := strings.TrimSuffix(e.Name(), ".sql")
		if version[:4] > upTo {
			continue
		}
		body, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var cur strings.Builder
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "--") {
				continue
			}
			cur.WriteString(line + "\n")
			if strings.HasSuffix(strings.TrimSpace(line), ";") {
				stmts = append(stmts, cur.String())
				cur.Reset()
			}
		}
		stmts = append(stmts, `INSERT INTO schema_migrations (version, applied_at) VALUES ('`+version+`', 0)`)
	}
	execAll(t, db.driver, db.raw, stmts...)
}

// oldOrg is an organization as binaries before 0004 wrote it: the owner's
// token hash in users.token_hash, the app's verifier token hash in
// apps.verifier_hash, and a member deleted.
var oldOrg = []string{
	`INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'Default', 1790000000000000)`,
	`INSERT INTO users (id, org_id, email, role, token_hash, created_at) VALUES ('usr_1', 'org_1', 'o@example.com', 'owner', 'v1:def', 1790000000000000)`,
	`INSERT INTO users (id, org_id, email, role, token_hash, created_at, deleted_at) VALUES ('usr_2', 'org_1', 'm@example.com', 'member', 'v1:gone', 1790000000000000, 1790000001000000)`,
	`INSERT INTO apps (id, org_id, name, kind, verifier_hash, created_at, created_by) VALUES ('app_1', 'org_1', 'fn', 'cloud_function', 'v1:ver', 1790000000000000, 'usr_1')`,
}

// A database written before verifier and user tokens had tables of their
// own (0002) keeps working after 0004: the app's token verifies as its
// current token, the owner's token authenticates as their "initial"
// token, which they can list and, once they hold another, delete; the
// deleted member's token stays dead.
func TestMigrationMovesTokens(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			db := migrationDBs[name](t)
			ctx := context.Background()
			databaseAt(t, db, "0002")
			execAll(t, db.driver, db.raw, oldOrg...)

			s, err := store.Open(ctx, db.dsn)
			if err != nil {
				t.Fatalf("open a 0002 database: %v", err)
			}
			defer s.Close()
			now := storetestNow()
			a, v, err := s.AppByVerifier(ctx, "v1:ver")
			if err != nil || a.ID != "app_1" || a.OrgID != "org_1" || v.ExpiresAt != nil || v.ID != "vtk_1" {
				t.Fatalf("the app's old verifier token: %+v %+v, %v", a, v, err)
			}
			u, tok, err := s.UserByToken(ctx, "v1:def")
			if err != nil || u.ID != "usr_1" || u.Role != "owner" || tok.ID != "utk_1" || tok.Name != "initial" || tok.ExpiresAt != nil {
				t.Fatalf("the owner's old token: %+v %+v, %v", u, tok, err)
			}
			if _, _, err := s.UserByToken(ctx, "v1:gone"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the deleted member's token: %v, want ErrNotFound", err)
			}
			list, err := s.ListVerifierTokens(ctx, "org_1", "app_1", now)
			if err != nil || len(list) != 1 || list[0].Prefix != "akv_" {
				t.Fatalf("ListVerifierTokens = %+v, %v", list, err)
			}
			// The owner retires the bootstrap token after making another.
			if err := s.DeleteUserToken(ctx, "usr_1", "utk_1", now); !errors.Is(err, store.ErrLastToken) {
				t.Fatalf("deleting the only token: %v, want ErrLastToken", err)
			}
			must(t, s.CreateUserToken(ctx, store.UserToken{ID: "utk_new", UserID: "usr_1", OrgID: "org_1", Name: "laptop", Hash: "v1:new", Prefix: "aku_abcdef", CreatedAt: now}))
			must(t, s.DeleteUserToken(ctx, "usr_1", "utk_1", now))
			if _, _, err := s.UserByToken(ctx, "v1:def"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the retired bootstrap token: %v, want ErrNotFound", err)
			}
			// Nothing that hashes like a token was left behind in the old columns.
			for _, q := range []string{`SELECT count(*) FROM users WHERE token_hash LIKE 'v1:%'`, `SELECT count(*) FROM apps WHERE verifier_hash LIKE 'v1:%'`} {
				if n := countRows(t, db, q); n != 0 {
					t.Errorf("%s = %d, want 0", q, n)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// countRows runs a count query on db with database/sql, past the store.
func countRows(t *testing.T, db migrationDB, q string) int {
	t.Helper()
	conn, err := sql.Open(db.driver, db.raw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
