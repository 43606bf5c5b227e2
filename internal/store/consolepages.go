package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// SetUserRole changes a live user's role, audited as user.role in the same
// transaction. A user of another organization, or deleted, is ErrNotFound.
func (s *Store) SetUserRole(ctx context.Context, orgID, id, role, actor string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, id, orgID).Scan(&old)
		if err != nil {
			return notFound(err)
		}
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE users SET role = $1 WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL`, role, id, orgID); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "user.role", Target: id, Detail: "role " + old + " to " + role})
	})
}

// UsersByEmail returns the live users, of every organization, whose email
// is email (emails are stored lower-case): sign-in with OpenID Connect
// finds its user by it.
func (s *Store) UsersByEmail(ctx context.Context, email string) ([]User, error) {
	users, err := queryAll(ctx, s.db, scanUser, `SELECT `+userCols+` FROM users WHERE email = $1 AND deleted_at IS NULL ORDER BY created_at, id`, email)
	return users, classify(err)
}

// AuditFilter selects an organization's audit records; zero fields select
// everything.
type AuditFilter struct {
	Action string
	Actor  string
	// AppID keeps the records about the app itself or about one of its keys.
	AppID string
	// KeyID keeps the records about one key: those whose target it is
	// (created, limits changed, revoked, looked up, leaked, rolled), and
	// those that name it in their detail (the other key of a roll, a
	// secret that holds it).
	KeyID string
	// Since and Until bound At: Since <= At < Until.
	Since, Until time.Time
	// Before, when set, keeps records older than that id: the next page.
	Before int64
	Limit  int
}

// ListAuditWhere returns an organization's audit records that f selects,
// newest first, at most f.Limit.
func (s *Store) ListAuditWhere(ctx context.Context, orgID string, f AuditFilter) ([]Audit, error) {
	where, args := []string{"org_id = $1"}, []any{orgID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.AppID != "" {
		add("(target = ? OR target IN (SELECT id FROM api_keys WHERE org_id = $1 AND app_id = ?))", f.AppID)
	}
	if f.KeyID != "" {
		// The id is matched literally: LIKE's wildcards in it are escaped.
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(f.KeyID) + "%"
		args = append(args, f.KeyID, like)
		where = append(where, fmt.Sprintf(`(target = $%d OR detail LIKE $%d ESCAPE '\')`, len(args)-1, len(args)))
	}
	if !f.Since.IsZero() {
		add("at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", micros(f.Until))
	}
	if f.Before > 0 {
		add("id < ?", f.Before)
	}
	args = append(args, f.Limit)
	records, err := queryAll(ctx, s.db, func(row rowScanner) (Audit, error) {
		var a Audit
		err := row.Scan(&a.ID, &a.OrgID, timeCol{&a.At}, &a.Actor, &a.Action, &a.Target, &a.Detail)
		return a, err
	}, fmt.Sprintf(`SELECT id, org_id, at, actor, action, target, detail FROM audit WHERE %s ORDER BY id DESC LIMIT $%d`, strings.Join(where, " AND "), len(args)), args...)
	return records, classify(err)
}

// AuditActions lists the actions an organization's audit log holds, for
// the Audit log page's filter.
func (s *Store) AuditActions(ctx context.Context, orgID string) ([]string, error) {
	actions, err := queryAll(ctx, s.db, func(row rowScanner) (string, error) {
		var a string
		return a, row.Scan(&a)
	}, `SELECT DISTINCT action FROM audit WHERE org_id = $1 ORDER BY action`, orgID)
	return actions, classify(err)
}
