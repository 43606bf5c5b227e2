package store

import (
	"context"
	"database/sql"
	"time"
)

// StartOIDCLogin records a sign-in with OpenID Connect under way, until
// expires; it sweeps the flows already past their time.
func (s *Store) StartOIDCLogin(ctx context.Context, id string, now, expires time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oidc_logins WHERE expires_at <= $1`, micros(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO oidc_logins (id, expires_at) VALUES ($1, $2)`, id, micros(expires))
		return err
	})
}

// FinishOIDCLogin ends a sign-in under way: of any number of callbacks
// for it, on any replicas, one succeeds. Unknown, finished and expired
// flows are ErrNotFound.
func (s *Store) FinishOIDCLogin(ctx context.Context, id string, now time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, ErrNotFound, `DELETE FROM oidc_logins WHERE id = $1 AND expires_at > $2`, id, micros(now))
	})
}
