package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Errors of user tokens; both are ErrConflict to errors.Is.
var (
	// ErrLastToken is DeleteUserToken's answer for the user's only live
	// token: without it they could not call the API at all.
	ErrLastToken = fmt.Errorf("the user's only live token: %w", ErrConflict)
	// ErrTooManyTokens is CreateUserToken's answer when the user already
	// holds MaxUserTokens live tokens.
	ErrTooManyTokens = fmt.Errorf("too many live tokens: %w", ErrConflict)
)

// MaxUserTokens bounds one user's live tokens, so that a script minting in
// a loop fills no table.
const MaxUserTokens = 25

// FirstUserTokenName names the token a user is created with.
const FirstUserTokenName = "initial"

func insertUser(ctx context.Context, tx *sql.Tx, u User) error {
	// users.token_hash is no longer read (migration 0004): it holds a
	// unique placeholder, and the token lives in user_tokens.
	_, err := tx.ExecContext(ctx, `INSERT INTO users (id, org_id, email, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		u.ID, u.OrgID, u.Email, u.Role, "moved:"+u.ID, micros(u.CreatedAt))
	if err != nil {
		return err
	}
	return insertUserToken(ctx, tx, UserToken{ID: firstTokenID("utk", u.ID), UserID: u.ID, OrgID: u.OrgID, Name: FirstUserTokenName,
		Hash: u.TokenHash, Prefix: u.TokenPrefix, CreatedAt: u.CreatedAt})
}

func insertUserToken(ctx context.Context, tx *sql.Tx, t UserToken) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO user_tokens (id, user_id, org_id, name, hash, prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.UserID, t.OrgID, t.Name, t.Hash, t.Prefix, micros(t.CreatedAt), nullMicros(t.ExpiresAt))
	return err
}

const userTokenCols = `t.id, t.user_id, t.org_id, t.name, t.prefix, t.created_at, t.expires_at`

func scanUserToken(row rowScanner, extra ...any) (UserToken, error) {
	var t UserToken
	err := row.Scan(append([]any{&t.ID, &t.UserID, &t.OrgID, &t.Name, &t.Prefix, timeCol{&t.CreatedAt}, nullTimeCol{&t.ExpiresAt}}, extra...)...)
	return t, err
}

// UserByToken finds the token that hashes to h and its live user. The
// token's ExpiresAt is the caller's to compare with its clock: an expired
// token is returned, not refused.
func (s *Store) UserByToken(ctx context.Context, h string) (User, UserToken, error) {
	defer s.timed("token_lookup")()
	var u User
	t, err := scanUserToken(s.db.QueryRowContext(ctx, `SELECT `+userTokenCols+`, `+sessionUserCols+`
		FROM user_tokens t JOIN users u ON u.id = t.user_id AND u.deleted_at IS NULL WHERE t.hash = $1`, h), userDest(&u)...)
	if err != nil {
		return User{}, UserToken{}, classify(notFound(err))
	}
	return u, t, nil
}

// liveUserTokens are a user's tokens that have not expired by now, oldest
// first.
func liveUserTokens(ctx context.Context, q querier, userID string, now time.Time) ([]UserToken, error) {
	return queryAll(ctx, q, func(row rowScanner) (UserToken, error) { return scanUserToken(row) },
		`SELECT `+userTokenCols+` FROM user_tokens t WHERE t.user_id = $1 AND (t.expires_at IS NULL OR t.expires_at > $2) ORDER BY t.created_at, t.id`,
		userID, micros(now))
}

// CreateUserToken stores a new token of a live user, audited, and deletes
// the user's expired tokens. A deleted user is ErrCreatorGone; a user
// holding MaxUserTokens live tokens, ErrTooManyTokens.
func (s *Store) CreateUserToken(ctx context.Context, t UserToken) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// The user's row lock orders this after a concurrent DeleteUser
		// (PostgreSQL), which then deletes this token too.
		if err := execOne(ctx, tx, ErrCreatorGone, `UPDATE users SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, t.UserID, t.OrgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_tokens WHERE user_id = $1 AND expires_at <= $2`, t.UserID, micros(t.CreatedAt)); err != nil {
			return err
		}
		live, err := liveUserTokens(ctx, tx, t.UserID, t.CreatedAt)
		if err != nil {
			return err
		}
		if len(live) >= MaxUserTokens {
			return ErrTooManyTokens
		}
		if err := insertUserToken(ctx, tx, t); err != nil {
			return err
		}
		detail := "no expiry"
		if t.ExpiresAt != nil {
			detail = "expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
		}
		return addAudit(ctx, tx, Audit{OrgID: t.OrgID, At: t.CreatedAt, Actor: t.UserID, Action: "token.create", Target: t.ID, Detail: detail})
	})
}

// ListUserTokens lists a user's tokens that have not expired by now,
// oldest first.
func (s *Store) ListUserTokens(ctx context.Context, userID string, now time.Time) ([]UserToken, error) {
	tokens, err := liveUserTokens(ctx, s.db, userID, now)
	return tokens, classify(err)
}

// DeleteUserToken deletes one of a live user's live tokens, audited, and
// ends the console sessions started with it. Another user's token, an
// expired or unknown one is ErrNotFound; the user's only live token,
// ErrLastToken.
func (s *Store) DeleteUserToken(ctx context.Context, userID, id string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var orgID string
		if err := tx.QueryRowContext(ctx, `UPDATE users SET deleted_at = deleted_at WHERE id = $1 AND deleted_at IS NULL RETURNING org_id`, userID).Scan(&orgID); err != nil {
			return notFound(err)
		}
		live, err := liveUserTokens(ctx, tx, userID, at)
		if err != nil {
			return err
		}
		found := false
		for _, t := range live {
			found = found || t.ID == id
		}
		switch {
		case !found:
			return ErrNotFound
		case len(live) == 1:
			return ErrLastToken
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_tokens WHERE id = $1 AND user_id = $2`, id, userID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE token_id = $1`, id); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: userID, Action: "token.revoke", Target: id})
	})
}
