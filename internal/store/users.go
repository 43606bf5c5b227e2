package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CreateUser adds a user to an organization.
func (s *Store) CreateUser(ctx context.Context, u User, actor string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: u.OrgID, At: u.CreatedAt, Actor: actor, Action: "user.create", Target: u.ID, Detail: "role " + u.Role})
	})
}

const userCols = `id, org_id, email, role, created_at, deleted_at`

// userDest are the scan destinations of userCols.
func userDest(u *User) []any {
	return []any{&u.ID, &u.OrgID, &u.Email, &u.Role, timeCol{&u.CreatedAt}, nullTimeCol{&u.DeletedAt}}
}

func scanUser(row rowScanner) (User, error) {
	var u User
	err := row.Scan(userDest(&u)...)
	return u, err
}

// GetUser returns a live user of an organization.
func (s *Store) GetUser(ctx context.Context, orgID, id string) (User, error) {
	return one(scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, id, orgID)))
}

// ListUsers lists an organization's live users, oldest first.
func (s *Store) ListUsers(ctx context.Context, orgID string) ([]User, error) {
	users, err := queryAll(ctx, s.db, scanUser, `SELECT `+userCols+` FROM users WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, orgID)
	return users, classify(err)
}

// DeleteUser deletes a user softly, deletes their tokens, ends their console
// sessions and orphans
// the live keys they created (reason creator_deleted), with an event for
// each key.
func (s *Store) DeleteUser(ctx context.Context, orgID, id, actor string, at time.Time) (orphaned int, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := softDelete(ctx, tx, "users", orgID, id, at); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE user_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_tokens WHERE user_id = $1`, id); err != nil {
			return err
		}
		var err error
		if orphaned, err = orphanKeys(ctx, tx, `created_by = $1`, id, OrphanCreatorDeleted, at); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "user.delete", Target: id, Detail: fmt.Sprintf("orphaned %d keys", orphaned)})
	})
	return orphaned, err
}

// softDelete marks a live row of an organization's users or apps (table)
// deleted at at; a row already deleted, or of another organization, is
// ErrNotFound. The row stays for the audit log and the keys that name it.
func softDelete(ctx context.Context, tx *sql.Tx, table, orgID, id string, at time.Time) error {
	return execOne(ctx, tx, ErrNotFound, `UPDATE `+table+` SET deleted_at = $1 WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL`, micros(at), id, orgID)
}
