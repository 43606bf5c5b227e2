package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Open opens the store named by dsn and applies pending migrations. A dsn
// starting with postgres:// or postgresql:// is PostgreSQL; anything else is
// the path of a SQLite database file.
func Open(ctx context.Context, dsn string) (*Store, error) {
	open := openSQLite
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		open = openPostgres
	}
	s, err := open(dsn)
	if err != nil {
		return nil, err
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

// openPostgres opens a pool of connections to the PostgreSQL database at
// dsn, bounded by the pool settings in its query (pgPoolSettings). Reads
// and writes share the pool: PostgreSQL takes many writers.
func openPostgres(dsn string) (*Store, error) {
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
	return &Store{db: db, wdb: db, dialect: "postgres", pgDSN: dsn}, nil
}

// openSQLite opens the SQLite database file at path with two pools: one
// writer that begins IMMEDIATE transactions, and readers (see Store.wdb).
func openSQLite(path string) (*Store, error) {
	wdb, err := openSQLitePool(path, "immediate", 1)
	if err != nil {
		return nil, err
	}
	db, err := openSQLitePool(path, "deferred", 8)
	if err != nil {
		wdb.Close()
		return nil, err
	}
	return &Store{db: db, wdb: wdb, dialect: "sqlite"}, nil
}

// openSQLitePool opens a pool of conns connections to the SQLite file at
// path whose transactions begin with txlock.
func openSQLitePool(path, txlock string, conns int) (*sql.DB, error) {
	q := url.Values{}
	// mmap_size lets reads of the database file be memory reads
	// shared by every connection, where each connection's own page
	// cache (2 MB) would miss on a large key table and pread(2).
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)", "mmap_size(268435456)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", txlock)
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
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
