package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// addAudit writes an audit record inside tx.
func addAudit(ctx context.Context, tx *sql.Tx, a Audit) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (org_id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		a.OrgID, micros(a.At), a.Actor, a.Action, a.Target, a.Detail)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return webhooksForAudits(ctx, tx, []Audit{a})
}

// addAudits writes audit records inside tx with one statement (see
// addEvents).
func addAudits(ctx context.Context, tx *sql.Tx, recs []Audit) error {
	if len(recs) == 0 {
		return nil
	}
	rows, args := make([]string, len(recs)), make([]any, 0, 6*len(recs))
	for i, a := range recs {
		n := len(args)
		rows[i] = fmt.Sprintf("($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
		args = append(args, a.OrgID, micros(a.At), a.Actor, a.Action, a.Target, a.Detail)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit (org_id, at, actor, action, target, detail) VALUES `+strings.Join(rows, ", "), args...); err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return webhooksForAudits(ctx, tx, recs)
}

// RecordAudit writes an audit record on its own, for an act that changes
// nothing else (a key lookup): acts that change data audit in their own
// transaction instead.
func (s *Store) RecordAudit(ctx context.Context, a Audit) error {
	return classify(s.write(ctx, func(tx *sql.Tx) error { return addAudit(ctx, tx, a) }))
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
