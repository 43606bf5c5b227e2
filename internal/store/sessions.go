package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
// sweeps up to SessionSweepLimit sessions that expired by its CreatedAt.
// replaces, when set, is the id of a session the same browser had before
// (a login over an old cookie): it is deleted in the same transaction,
// whoever's it was, so a login never leaves the previous session alive.
// The login goes into the user's organization's audit log in the same
// transaction (console.login, by and about the user; the session's id,
// a hash of its cookie, stays out of it). A deleted or unknown user is
// ErrNotFound; an id already taken, ErrConflict.
func (s *Store) CreateConsoleSession(ctx context.Context, sess ConsoleSession, replaces string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// As in CreateKey, the no-op UPDATE takes the user's row lock
		// (PostgreSQL), so a concurrent DeleteUser waits and then deletes
		// this session too: none outlives its user's deletion.
		var orgID string
		err := tx.QueryRowContext(ctx, `UPDATE users SET deleted_at = deleted_at WHERE id = $1 AND deleted_at IS NULL RETURNING org_id`, sess.UserID).Scan(&orgID)
		if err != nil {
			return notFound(err)
		}
		if replaces != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id = $1`, replaces); err != nil {
				return err
			}
		}
		if _, err := s.sweepSessions(ctx, tx, sess.CreatedAt, SessionSweepLimit); err != nil {
			return err
		}
		var tokenID any
		if sess.TokenID != "" {
			tokenID = sess.TokenID
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO console_sessions (id, user_id, flash, created_at, expires_at, token_id) VALUES ($1, $2, $3, $4, $5, $6)`,
			sess.ID, sess.UserID, sess.Flash, micros(sess.CreatedAt), micros(sess.ExpiresAt), tokenID)
		if err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: sess.CreatedAt, Actor: sess.UserID, Action: AuditConsoleLogin, Target: sess.UserID})
	})
}

// sessionUserCols are userCols of the users table joined as u.
var sessionUserCols = "u." + strings.ReplaceAll(userCols, ", ", ", u.")

// ConsoleSession returns the session with this id and its user, unless the
// session expired by now or the user was deleted: each is ErrNotFound, as
// is an unknown id. The user is read live in the same query, so a session
// acts with the user's current role.
func (s *Store) ConsoleSession(ctx context.Context, id string, now time.Time) (ConsoleSession, User, error) {
	defer s.timed("session_lookup")()
	row := s.db.QueryRowContext(ctx, `SELECT s.id, s.user_id, s.flash, s.created_at, s.expires_at, `+sessionUserCols+`
		FROM console_sessions s JOIN users u ON u.id = s.user_id AND u.deleted_at IS NULL
		WHERE s.id = $1 AND s.expires_at > $2`, id, micros(now))
	var c ConsoleSession
	var u User
	err := row.Scan(append([]any{&c.ID, &c.UserID, &c.Flash, timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt}}, userDest(&u)...)...)
	if err != nil {
		return ConsoleSession{}, User{}, classify(notFound(err))
	}
	return c, u, nil
}

// SetConsoleSessionFlash leaves a one-time notice for the session's next
// page, replacing any notice waiting. An unknown or expired session is
// ErrNotFound.
func (s *Store) SetConsoleSessionFlash(ctx context.Context, id string, now time.Time, flash string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, ErrNotFound, `UPDATE console_sessions SET flash = $1 WHERE id = $2 AND expires_at > $3`, flash, id, micros(now))
	})
}

// TakeConsoleSessionFlash returns the session's waiting notice ("" for
// none) and clears it. The read and the clear run with the row locked
// (FOR UPDATE on PostgreSQL; SQLite has one writer), so of two requests of
// one session, on any replicas, one gets the notice. An unknown or expired
// session is ErrNotFound.
func (s *Store) TakeConsoleSessionFlash(ctx context.Context, id string, now time.Time) (string, error) {
	var flash string
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT flash FROM console_sessions WHERE id = $1 AND expires_at > $2`+s.forUpdate(false), id, micros(now)).Scan(&flash)
		if err != nil || flash == "" {
			return notFound(err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE console_sessions SET flash = '' WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return "", err
	}
	return flash, nil
}

// DeleteConsoleSession deletes a session (logout): it ends on every replica
// at once, and the logout goes into the user's organization's audit log,
// at at, in the same transaction. A session already gone is ErrNotFound
// (and audits nothing).
func (s *Store) DeleteConsoleSession(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var userID, orgID string
		err := tx.QueryRowContext(ctx, `DELETE FROM console_sessions WHERE id = $1 RETURNING user_id`, id).Scan(&userID)
		if err != nil {
			return notFound(err)
		}
		// A session dies with its user (DeleteUser), so its user is here.
		if err := tx.QueryRowContext(ctx, `SELECT org_id FROM users WHERE id = $1`, userID).Scan(&orgID); err != nil {
			return fmt.Errorf("the ended session's user: %w", err)
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: userID, Action: AuditConsoleLogout, Target: userID})
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
