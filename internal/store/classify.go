package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// settled are errors classify passes on unchanged: the store's own, and
// the end of the caller's context.
var settled = []error{ErrNotFound, ErrConflict, ErrOrphaned, ErrCreatorGone, ErrKeyRevoked, ErrKeyExpired, ErrKeyRolled, ErrCursorExpired, ErrCursorAhead, ErrUnavailable, ErrWebhookDisabled,
	context.Canceled, context.DeadlineExceeded}

// classify maps a driver's error to the store's: a unique violation is
// ErrConflict; a database that is gone, unreachable or holding its lock too
// long is ErrUnavailable (the caller may retry). Anything else, a
// foreign-key violation included (every method checks the parent rows it
// needs first), passes on unchanged: a fault, not the caller's doing.
func classify(err error) error {
	if err == nil || slices.ContainsFunc(settled, func(e error) bool { return errors.Is(err, e) }) {
		return err
	}
	var kind error
	var pgErr *pgconn.PgError
	var sqliteErr *sqlite.Error
	switch {
	case errors.As(err, &pgErr):
		kind = pgKind(pgErr.Code)
	case errors.As(err, &sqliteErr):
		kind = sqliteKind(sqliteErr.Code())
	case lostDatabase(err):
		kind = ErrUnavailable
	}
	if kind == nil {
		return err
	}
	return fmt.Errorf("%w: %v", kind, err)
}

// pgKind is the store error of a PostgreSQL SQLSTATE, or nil.
func pgKind(code string) error {
	switch {
	case code == "23505": // unique_violation
		return ErrConflict
	case code == "22021" || code == "22P05":
		// A value PostgreSQL cannot hold as text (invalid UTF-8, NUL):
		// callers validate what they write, so this is a lookup by an id
		// no row can have. SQLite simply finds nothing.
		return ErrNotFound
	case code == "55P03":
		// lock_not_available: a lock_timeout (set in the URL) ran out, as
		// SQLite's busy_timeout does (SQLITE_BUSY).
		return ErrUnavailable
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "57P"), strings.HasPrefix(code, "53"):
		// connection exceptions, operator intervention (shutdown), insufficient resources
		return ErrUnavailable
	}
	return nil
}

// sqliteKind is the store error of a SQLite (extended) result code, or nil.
func sqliteKind(code int) error {
	switch {
	case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return ErrConflict
	case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED:
		// The writer's lock was not granted within busy_timeout.
		return ErrUnavailable
	}
	return nil
}

// lostDatabase reports whether err says the connection to the database, or
// the database handle itself, is gone.
func lostDatabase(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) {
		return true
	}
	for _, gone := range []error{io.ErrUnexpectedEOF, io.EOF, driver.ErrBadConn, sql.ErrConnDone, pgconn.ErrConnClosed,
		syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNREFUSED} {
		if errors.Is(err, gone) {
			return true
		}
	}
	// A request still running as the service stops meets a closed *sql.DB
	// or *sql.Stmt. database/sql reports each with an unexported
	// errors.New value, so its text is all there is to match.
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") || strings.Contains(msg, "sql: statement is closed")
}
