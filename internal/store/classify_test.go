package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// storeErrors are the errors classify may answer with.
var storeErrors = []error{ErrNotFound, ErrConflict, ErrUnavailable, ErrOrphaned, ErrCreatorGone, ErrCursorExpired, ErrCursorAhead}

// unclassified marks a case whose error classify must pass on unchanged:
// no store error fits it, and the caller answers it as a fault (500).
var unclassified = errors.New("unclassified")

// classifyCase provokes one real error from a store's database.
type classifyCase struct {
	name    string
	provoke func(t *testing.T, s *Store) error
	want    error
}

// openClassify opens an empty store of the dialect, with an organization.
func openClassify(t *testing.T, dialect string) *Store {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "appkeys.db")
	if dialect == "postgres" {
		dsn = pgtest.NewDatabase(t)
	}
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.wdb.Exec(`INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'one', 0)`); err != nil {
		t.Fatal(err)
	}
	return s
}

// begin begins a transaction on db, rolled back when t ends.
func begin(t *testing.T, db *sql.DB) *sql.Tx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return tx
}

// classifyCases are the errors both databases give; each dialect adds its
// own way to provoke a busy writer and a lost connection.
var classifyCases = []classifyCase{
	{"unique violation", func(t *testing.T, s *Store) error {
		_, err := s.wdb.Exec(`INSERT INTO orgs (id, name, created_at) VALUES ('org_2', 'one', 0)`)
		return err
	}, ErrConflict},
	{"primary key violation", func(t *testing.T, s *Store) error {
		_, err := s.wdb.Exec(`INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'two', 0)`)
		return err
	}, ErrConflict},
	// Every method checks the parent row it needs first (CreateKey its app
	// and creator), so a foreign-key violation is a fault, not a conflict.
	{"foreign key violation", func(t *testing.T, s *Store) error {
		_, err := s.wdb.Exec(`INSERT INTO users (id, org_id, email, role, token_hash, created_at) VALUES ('usr_1', 'org_none', 'a@example.com', 'owner', 'h', 0)`)
		return err
	}, unclassified},
	{"syntax error", func(t *testing.T, s *Store) error {
		_, err := s.wdb.Exec(`SELEC 1`)
		return err
	}, unclassified},
	{"closed database", func(t *testing.T, s *Store) error {
		s.Close()
		var n int
		return s.db.QueryRow(`SELECT count(*) FROM orgs`).Scan(&n)
	}, ErrUnavailable},
	// The verify path's prepared statements, as a verify still running
	// when the service closes its store meets them.
	{"closed statement", func(t *testing.T, s *Store) error {
		s.Close()
		var id string
		return s.keyForVerify.QueryRow("h").Scan(&id)
	}, ErrUnavailable},
}

var dialectCases = map[string][]classifyCase{
	"sqlite": {
		// A second writer that does not wait: the store's own writer
		// holds the database's write lock.
		{"busy", func(t *testing.T, s *Store) error {
			begin(t, s.wdb)
			var path string
			if err := s.db.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
				t.Fatal(err)
			}
			other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			_, err = other.Begin()
			return err
		}, ErrUnavailable},
	},
	"postgres": {
		// A row lock not granted within lock_timeout (which an operator
		// may set in the URL): the same as SQLite's busy writer.
		{"lock timeout", func(t *testing.T, s *Store) error {
			if _, err := begin(t, s.wdb).Exec(`UPDATE orgs SET name = name WHERE id = 'org_1'`); err != nil {
				t.Fatal(err)
			}
			tx := begin(t, s.wdb)
			if _, err := tx.Exec(`SET LOCAL lock_timeout = '10ms'`); err != nil {
				t.Fatal(err)
			}
			_, err := tx.Exec(`UPDATE orgs SET name = name WHERE id = 'org_1'`)
			return err
		}, ErrUnavailable},
		// The server ends the connection (a restart, a failover).
		{"terminated connection", func(t *testing.T, s *Store) error {
			ctx := context.Background()
			conn, err := s.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var pid int
			if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if _, err := s.wdb.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
				t.Fatal(err)
			}
			var one int
			return conn.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
		}, ErrUnavailable},
	},
}

// TestClassify feeds classify real errors of both databases.
func TestClassify(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			if dialect == "postgres" {
				pgtest.Require(t)
			}
			for _, c := range append(append([]classifyCase{}, classifyCases...), dialectCases[dialect]...) {
				t.Run(c.name, func(t *testing.T) {
					raw := c.provoke(t, openClassify(t, dialect))
					if raw == nil {
						t.Fatal("no error provoked")
					}
					t.Logf("%T: %v", raw, raw)
					got := classify(raw)
					if c.want == unclassified {
						for _, e := range storeErrors {
							if errors.Is(got, e) {
								t.Fatalf("classify(%v) = %v, want it unclassified", raw, got)
							}
						}
						return
					}
					if !errors.Is(got, c.want) {
						t.Fatalf("classify(%v) = %v, want %v", raw, got, c.want)
					}
				})
			}
		})
	}
}
