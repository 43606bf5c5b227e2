// Package store keeps the key service's state in SQL: SQLite (embedded, the
// default) or PostgreSQL (for several key-service replicas). Both run the same
// queries through database/sql; each has its own migrations.
//
// Every method that changes something runs in one transaction that also
// writes the audit record and, where the change matters to a sidecar, the
// change-feed event. Event sequence numbers come from a counter row updated in
// that same transaction: the row lock (PostgreSQL) or the single writer
// (SQLite) makes transactions that write events commit in sequence order, so
// a reader that has seen sequence N has seen every event up to N and the feed
// never skips one.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

//go:embed migrations
var migrations embed.FS

// Errors the store reports; callers match them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrSecretConflict is the ErrConflict of a secret name already taken.
	ErrSecretConflict = fmt.Errorf("secret name %w", ErrConflict)
	// ErrOrphaned is returned by RevokeKey when the key is orphaned and the
	// caller may not revoke orphaned keys.
	ErrOrphaned = errors.New("key is orphaned")
	// ErrCreatorGone is returned by CreateKey when its creator was deleted.
	ErrCreatorGone = errors.New("the key's creator no longer exists")
	// ErrCursorExpired means the events after the cursor were pruned.
	ErrCursorExpired = errors.New("events cursor is older than the retained history")
	// ErrCursorAhead means the cursor is past the newest event: the
	// database went back in time (a restore, a failover that lost the last
	// commits), and events numbered up to the cursor may be new ones.
	ErrCursorAhead = errors.New("events cursor is past the newest event")
	// ErrUnavailable wraps failures to reach the database.
	ErrUnavailable = errors.New("store unavailable")
)

// Store is the SQL store. Its methods are safe for concurrent use.
type Store struct {
	db *sql.DB // reads
	// wdb takes write transactions. On SQLite, which allows one writer at a
	// time, it is a separate pool of one connection that begins IMMEDIATE
	// transactions: writers queue here instead of failing with SQLITE_BUSY,
	// and readers (WAL) never wait for them. On PostgreSQL it is db.
	wdb     *sql.DB
	dialect string // "sqlite" or "postgres"
	// observe, when set, receives each operation's duration.
	observe func(op string, d time.Duration)
	// The verify path's two lookups, prepared once: parsing their SQL anew
	// on every call took a quarter of a verify's CPU time on SQLite.
	keyByHash, keyForVerify, appByVerifier *sql.Stmt
}

// SetObserver sets a function that receives the duration of every write
// transaction, snapshot read and hot-path lookup, for metrics. Call it before
// the store is used.
func (s *Store) SetObserver(fn func(op string, d time.Duration)) { s.observe = fn }

func (s *Store) timed(op string) func() {
	if s.observe == nil {
		return func() {}
	}
	start := time.Now()
	return func() { s.observe(op, time.Since(start)) }
}

// Open opens the store named by dsn and applies pending migrations. A dsn
// starting with postgres:// or postgresql:// is PostgreSQL; anything else is
// the path of a SQLite database file.
func Open(ctx context.Context, dsn string) (*Store, error) {
	var s *Store
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		dsn, pool, err := pgPoolSettings(dsn)
		if err != nil {
			return nil, err
		}
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db.SetMaxOpenConns(pool.maxConns)
		db.SetMaxIdleConns(pool.maxConns)
		db.SetConnMaxIdleTime(pool.maxConnIdleTime)
		db.SetConnMaxLifetime(pool.maxConnLifetime)
		s = &Store{db: db, wdb: db, dialect: "postgres"}
	} else {
		open := func(txlock string, conns int) (*sql.DB, error) {
			q := url.Values{}
			// mmap_size lets reads of the database file be memory reads
			// shared by every connection, where each connection's own page
			// cache (2 MB) would miss on a large key table and pread(2).
			for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)", "mmap_size(268435456)"} {
				q.Add("_pragma", p)
			}
			q.Set("_txlock", txlock)
			db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(dsn)+"?"+q.Encode())
			if err != nil {
				return nil, fmt.Errorf("open sqlite: %w", err)
			}
			db.SetMaxOpenConns(conns)
			db.SetMaxIdleConns(conns)
			return db, nil
		}
		wdb, err := open("immediate", 1)
		if err != nil {
			return nil, err
		}
		db, err := open("deferred", 8)
		if err != nil {
			wdb.Close()
			return nil, err
		}
		s = &Store{db: db, wdb: wdb, dialect: "sqlite"}
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// prepare prepares the statements of the hot path (verify).
func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.keyByHash, err = s.db.PrepareContext(ctx, keyByHashSQL); err != nil {
		return fmt.Errorf("prepare key lookup: %w", err)
	}
	if s.keyForVerify, err = s.db.PrepareContext(ctx, keyForVerifySQL); err != nil {
		return fmt.Errorf("prepare key lookup: %w", err)
	}
	if s.appByVerifier, err = s.db.PrepareContext(ctx, appByVerifierSQL); err != nil {
		return fmt.Errorf("prepare verifier lookup: %w", err)
	}
	return nil
}

// Dialect names the database: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Close closes the database.
func (s *Store) Close() error {
	var err error
	for _, st := range []*sql.Stmt{s.keyByHash, s.keyForVerify, s.appByVerifier} {
		if st != nil {
			err = errors.Join(err, st.Close())
		}
	}
	err = errors.Join(err, s.db.Close())
	if s.wdb != s.db {
		err = errors.Join(err, s.wdb.Close())
	}
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.wdb.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	dir := "migrations/" + s.dialect
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(name, ".sql")
		body, err := migrations.ReadFile(dir + "/" + name)
		if err != nil {
			return err
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			if s.dialect == "postgres" {
				// Replicas starting together must not run a migration twice.
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7366052)`); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range splitSQL(string(body)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, micros(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
	}
	return nil
}

// splitSQL splits a migration into statements at semicolons that end a line.
// Our migrations hold no semicolons inside strings or bodies.
func splitSQL(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if stmt := strings.TrimSpace(cur.String()); stmt != ";" {
				out = append(out, stmt)
			}
			cur.Reset()
		}
	}
	if stmt := strings.TrimSpace(cur.String()); stmt != "" {
		out = append(out, stmt)
	}
	return out
}

// write runs fn in a write transaction, committing when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	defer s.timed("write")()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		return classify(err)
	}
	return nil
}

// read runs fn in a consistent read-only snapshot.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	defer s.timed("read")()
	var opts *sql.TxOptions
	if s.dialect == "postgres" {
		opts = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return classify(err)
	}
	defer tx.Rollback()
	return classify(fn(tx))
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}
