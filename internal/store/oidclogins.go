package store

import (
	"context"
	"database/sql"
	"time"
)

// UseOIDCLogin records a sign-in with OpenID Connect as finished, until
// expires, when its flow could no longer be used anyway; a flow recorded
// already is ErrConflict: of any number of callbacks for one flow, on any
// replicas, one succeeds. It sweeps the records past their time.
func (s *Store) UseOIDCLogin(ctx context.Context, id string, now, expires time.Time) error {
	return classify(s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oidc_logins WHERE expires_at <= $1`, micros(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO oidc_logins (id, expires_at) VALUES ($1, $2)`, id, micros(expires))
		return err
	}))
}
