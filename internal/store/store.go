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
	// onFeed, when set, hears of this store's commits that change the feed.
	onFeed func(FeedChange)
	// pgDSN is the PostgreSQL URL without the pool settings, for the
	// LISTEN connection that ListenFeed opens apart from the pool.
	pgDSN string
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

// write runs fn in a write transaction, committing when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	defer s.timed("write")()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(tx); err != nil {
		feedHeads.Delete(tx)
		tx.Rollback()
		return classify(err)
	}
	head, wroteEvents := feedHeadOf(tx)
	if wroteEvents {
		if err := s.notifyFeed(ctx, tx, itoa(head)); err != nil {
			tx.Rollback()
			return classify(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return classify(err)
	}
	if wroteEvents {
		s.feedChanged(FeedChange{Head: head})
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
