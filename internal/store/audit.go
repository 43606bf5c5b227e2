package store

import (
	"context"
	"database/sql"
	"fmt"
)

// addAudit writes an audit record inside tx.
func addAudit(ctx context.Context, tx *sql.Tx, a Audit) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (org_id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		a.OrgID, micros(a.At), a.Actor, a.Action, a.Target, a.Detail)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// ListAudit returns an organization's newest audit records, newest first.
func (s *Store) ListAudit(ctx context.Context, orgID string, limit int) ([]Audit, error) {
	records, err := queryAll(ctx, s.db, func(row rowScanner) (Audit, error) {
		var a Audit
		err := row.Scan(&a.ID, &a.OrgID, timeCol{&a.At}, &a.Actor, &a.Action, &a.Target, &a.Detail)
		return a, err
	}, `SELECT id, org_id, at, actor, action, target, detail FROM audit WHERE org_id = $1 ORDER BY id DESC LIMIT $2`, orgID, limit)
	return records, classify(err)
}
