package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Errors of verifier-token rotation; both are ErrConflict to errors.Is.
var (
	// ErrPreviousTokenLive is MintVerifierToken's answer while the app's
	// previous token still counts down: a third token would let the
	// current one, demoted, outlive the overlap it was promised.
	ErrPreviousTokenLive = fmt.Errorf("the app's previous verifier token is still live: %w", ErrConflict)
	// ErrCurrentToken is RetireVerifierToken's answer for the app's
	// current token, without which its sidecar could not verify.
	ErrCurrentToken = fmt.Errorf("the app's current verifier token cannot be retired: %w", ErrConflict)
)

// firstTokenID is the id of the first token of a user or app: the owner's
// id with another prefix ("usr_x" → "utk_x"), as migration 0004 gave the
// tokens it moved.
func firstTokenID(prefix, ownerID string) string {
	_, rest, _ := strings.Cut(ownerID, "_")
	return prefix + "_" + rest
}

// insertFirstVerifier stores a new app's first verifier token as its current one.
func insertFirstVerifier(ctx context.Context, tx *sql.Tx, a App) error {
	return insertVerifier(ctx, tx, VerifierToken{ID: firstTokenID("vtk", a.ID), AppID: a.ID, OrgID: a.OrgID,
		Hash: a.VerifierHash, Prefix: a.VerifierPrefix, CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy})
}

func insertVerifier(ctx context.Context, tx *sql.Tx, v VerifierToken) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO verifier_tokens (id, app_id, org_id, hash, prefix, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		v.ID, v.AppID, v.OrgID, v.Hash, v.Prefix, micros(v.CreatedAt), v.CreatedBy, nullMicros(v.ExpiresAt))
	return err
}

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

const verifierCols = `v.id, v.app_id, v.org_id, v.prefix, v.created_at, v.created_by, v.expires_at, v.last_used_at`

func scanVerifier(row rowScanner, extra ...any) (VerifierToken, error) {
	var v VerifierToken
	err := row.Scan(append([]any{&v.ID, &v.AppID, &v.OrgID, &v.Prefix, timeCol{&v.CreatedAt}, &v.CreatedBy, nullTimeCol{&v.ExpiresAt}, nullTimeCol{&v.LastUsedAt}}, extra...)...)
	return v, err
}

const appByVerifierSQL = `SELECT ` + verifierCols + `, a.name, a.kind, a.created_at, a.created_by, a.deleted_at
	FROM verifier_tokens v JOIN apps a ON a.id = v.app_id WHERE v.hash = $1`

// AppByVerifier finds the verifier token that hashes to h and its app,
// deleted or not (DeletedAt says which): a deleted app's sidecar may still
// ask about keys, which answer ORPHANED, and read the feed to its
// app.deleted event. The token's ExpiresAt is the caller's to compare with
// its clock: an expired token is returned, not refused.
func (s *Store) AppByVerifier(ctx context.Context, h string) (App, VerifierToken, error) {
	defer s.timed("verifier_lookup")()
	var a App
	v, err := scanVerifier(s.appByVerifier.QueryRowContext(ctx, h), &a.Name, &a.Kind, timeCol{&a.CreatedAt}, &a.CreatedBy, nullTimeCol{&a.DeletedAt})
	if err != nil {
		return App{}, VerifierToken{}, classify(notFound(err))
	}
	a.ID, a.OrgID = v.AppID, v.OrgID
	return a, v, nil
}

// liveVerifiers are an app's verifier tokens that have not expired by now,
// oldest first.
func liveVerifiers(ctx context.Context, q querier, appID string, now time.Time) ([]VerifierToken, error) {
	return queryAll(ctx, q, func(row rowScanner) (VerifierToken, error) { return scanVerifier(row) },
		`SELECT `+verifierCols+` FROM verifier_tokens v WHERE v.app_id = $1 AND (v.expires_at IS NULL OR v.expires_at > $2) ORDER BY v.created_at, v.id`,
		appID, micros(now))
}

// MintVerifierToken makes v the current verifier token of a live app of
// the organization. The token it replaces stops at previousUntil (at
// v.CreatedAt or before: at once, its row deleted) and never later than
// it would have. While an earlier previous token is still live the answer
// is ErrPreviousTokenLive and nothing changes; an unknown or deleted app,
// or another organization's, is ErrNotFound. It returns the replaced
// token with its new expiry. Expired tokens of the app are deleted, and
// the mint is audited, in the same transaction.
func (s *Store) MintVerifierToken(ctx context.Context, v VerifierToken, previousUntil time.Time) (VerifierToken, error) {
	var prev VerifierToken
	err := s.write(ctx, func(tx *sql.Tx) error {
		// The app's row lock orders concurrent mints (PostgreSQL): the
		// second sees the first's token as current.
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE apps SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, v.AppID, v.OrgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM verifier_tokens WHERE app_id = $1 AND expires_at <= $2`, v.AppID, micros(v.CreatedAt)); err != nil {
			return err
		}
		live, err := liveVerifiers(ctx, tx, v.AppID, v.CreatedAt)
		if err != nil {
			return err
		}
		var current *VerifierToken
		for i := range live {
			if live[i].ExpiresAt != nil {
				return ErrPreviousTokenLive
			}
			current = &live[i]
		}
		detail := ""
		if current != nil {
			prev = *current
			until := previousUntil.UTC()
			if !until.After(v.CreatedAt) {
				until = v.CreatedAt
				_, err = tx.ExecContext(ctx, `DELETE FROM verifier_tokens WHERE id = $1`, prev.ID)
			} else {
				_, err = tx.ExecContext(ctx, `UPDATE verifier_tokens SET expires_at = $1 WHERE id = $2`, micros(until), prev.ID)
			}
			if err != nil {
				return err
			}
			prev.ExpiresAt = &until
			detail = fmt.Sprintf("app %s; previous %s stops at %s", v.AppID, prev.ID, until.Format(time.RFC3339))
		}
		if err := insertVerifier(ctx, tx, v); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: v.OrgID, At: v.CreatedAt, Actor: v.CreatedBy, Action: "verifier_token.mint", Target: v.ID, Detail: detail})
	})
	return prev, err
}

// ListVerifierTokens lists the verifier tokens of a live app of the
// organization that have not expired by now, oldest first. An unknown or
// deleted app, or another organization's, is ErrNotFound.
func (s *Store) ListVerifierTokens(ctx context.Context, orgID, appID string, now time.Time) ([]VerifierToken, error) {
	var out []VerifierToken
	err := s.read(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM apps WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, appID, orgID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		var err error
		out, err = liveVerifiers(ctx, tx, appID, now)
		return err
	})
	return out, err
}

// RetireVerifierToken deletes a live, not current, verifier token of a live
// app of the organization at once, audited, and returns it (its Hash
// filled, for caches to forget). The current token is ErrCurrentToken; a
// token unknown, expired, of another app or of another organization is
// ErrNotFound.
func (s *Store) RetireVerifierToken(ctx context.Context, orgID, appID, id, actor string, at time.Time) (VerifierToken, error) {
	var v VerifierToken
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE apps SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, appID, orgID); err != nil {
			return err
		}
		var hash string
		var err error
		v, err = scanVerifier(tx.QueryRowContext(ctx, `SELECT `+verifierCols+`, v.hash FROM verifier_tokens v
			WHERE v.id = $1 AND v.app_id = $2 AND (v.expires_at IS NULL OR v.expires_at > $3)`, id, appID, micros(at)), &hash)
		if err != nil {
			return notFound(err)
		}
		v.Hash = hash
		if v.ExpiresAt == nil {
			return ErrCurrentToken
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM verifier_tokens WHERE id = $1`, id); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "verifier_token.retire", Target: id, Detail: "app " + appID})
	})
	return v, err
}

// TouchVerifierTokens records verifier tokens' last-used times, as
// TouchKeys does keys'.
func (s *Store) TouchVerifierTokens(ctx context.Context, used map[string]time.Time) error {
	return s.touch(ctx, "verifier_tokens", used)
}
