package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// SessionSweepLimit bounds how many expired console sessions one sweep
// deletes, so that the login that happens to sweep after a quiet week does
// not hold the writer for long; the next one takes the rest.
const SessionSweepLimit = 100

// forUpdate is the row-locking clause of a SELECT in a write transaction:
// PostgreSQL needs it to serialize read-modify-write of one row across
// replicas, and SQLite, whose writer is already serialized, has no such
// syntax. skipLocked lets a sweep pass over rows another transaction holds.
func (s *Store) forUpdate(skipLocked bool) string {
	switch {
	case s.dialect != "postgres":
		return ""
	case skipLocked:
		return " FOR UPDATE SKIP LOCKED"
	}
	return " FOR UPDATE"
}

// CreateConsoleSession stores a new console session of a live user, and
// sweeps up to SessionSweepLimit sessions that expired by its CreatedAt. A
// deleted or unknown user is ErrNotFound; an id already taken, ErrConflict.
func (s *Store) CreateConsoleSession(ctx context.Context, sess ConsoleSession) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// As in CreateKey, the no-op UPDATE takes the user's row lock
		// (PostgreSQL), so a concurrent DeleteUser waits and then deletes
		// this session too: none outlives its user's deletion.
		res, err := tx.ExecContext(ctx, `UPDATE users SET deleted_at = deleted_at WHERE id = $1 AND deleted_at IS NULL`, sess.UserID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if _, err := s.sweepSessions(ctx, tx, sess.CreatedAt, SessionSweepLimit); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO console_sessions (id, user_id, sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			sess.ID, sess.UserID, sess.Sealed, micros(sess.CreatedAt), micros(sess.ExpiresAt))
		return err
	})
}

const sessionCols = `id, user_id, sealed, created_at, expires_at`

func scanSession(row interface{ Scan(...any) error }) (ConsoleSession, error) {
	var c ConsoleSession
	var created, expires int64
	if err := row.Scan(&c.ID, &c.UserID, &c.Sealed, &created, &expires); err != nil {
		return ConsoleSession{}, err
	}
	c.CreatedAt, c.ExpiresAt = fromMicros(created), fromMicros(expires)
	return c, nil
}

// ConsoleSession returns the session with this id, unless it expired by
// now: an unknown or expired session is ErrNotFound.
func (s *Store) ConsoleSession(ctx context.Context, id string, now time.Time) (ConsoleSession, error) {
	defer s.timed("session_lookup")()
	c, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM console_sessions WHERE id = $1 AND expires_at > $2`, id, micros(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleSession{}, ErrNotFound
	}
	return c, classify(err)
}

// UpdateConsoleSession changes a session's sealed state: fn gets the row
// as it is and returns the new state, or nil to leave the row unchanged.
// The read, fn and the write run in one write transaction with the row
// locked (FOR UPDATE on PostgreSQL; SQLite has one writer), so concurrent
// updates of one session, through any replica, apply one after the other
// and each sees the last one's result. An error from fn rolls back and is
// returned. fn must not call the store: on SQLite it runs while this
// transaction holds the only writer connection. An unknown or expired
// session is ErrNotFound.
func (s *Store) UpdateConsoleSession(ctx context.Context, id string, now time.Time, fn func(ConsoleSession) ([]byte, error)) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		c, err := scanSession(tx.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM console_sessions WHERE id = $1 AND expires_at > $2`+s.forUpdate(false), id, micros(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		sealed, err := fn(c)
		if err != nil || sealed == nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE console_sessions SET sealed = $1 WHERE id = $2`, sealed, id)
		return err
	})
}

// DeleteConsoleSession deletes a session (logout): it ends on every replica
// at once. A session already gone is ErrNotFound.
func (s *Store) DeleteConsoleSession(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// SweepConsoleSessions deletes up to limit sessions that expired by now and
// returns how many it deleted.
func (s *Store) SweepConsoleSessions(ctx context.Context, now time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = s.sweepSessions(ctx, tx, now, limit)
		return err
	})
	return n, err
}

// sweepSessions deletes up to limit expired sessions inside tx. On
// PostgreSQL, rows another transaction holds (a replica sweeping at the
// same moment, an update in flight) are skipped rather than waited for.
func (s *Store) sweepSessions(ctx context.Context, tx *sql.Tx, now time.Time, limit int) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id IN (
		SELECT id FROM console_sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2`+s.forUpdate(true)+`)`, micros(now), limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
