package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CreateApp creates an app and its first verifier token (a.VerifierHash).
func (s *Store) CreateApp(ctx context.Context, a App) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// apps.verifier_hash is no longer read (migration 0004): it holds a
		// unique placeholder, and the token lives in verifier_tokens.
		_, err := tx.ExecContext(ctx, `INSERT INTO apps (id, org_id, name, kind, verifier_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.ID, a.OrgID, a.Name, a.Kind, "moved:"+a.ID, micros(a.CreatedAt), a.CreatedBy)
		if err != nil {
			return err
		}
		if err := insertFirstVerifier(ctx, tx, a); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: a.OrgID, At: a.CreatedAt, Actor: a.CreatedBy, Action: "app.create", Target: a.ID, Detail: a.Kind})
	})
}

// appCols counts keys with a correlated subquery; now decides expiry.
const appCols = `a.id, a.org_id, a.name, a.kind, a.created_at, a.created_by, a.deleted_at,
	(SELECT count(*) FROM api_keys k WHERE k.app_id = a.id AND k.revoked_at IS NULL AND k.orphaned_at IS NULL AND k.expires_at > $1),
	(SELECT count(*) FROM api_keys k WHERE k.app_id = a.id AND k.revoked_at IS NULL AND k.orphaned_at IS NOT NULL)`

func scanApp(row rowScanner) (App, error) {
	var a App
	err := row.Scan(&a.ID, &a.OrgID, &a.Name, &a.Kind, timeCol{&a.CreatedAt}, &a.CreatedBy, nullTimeCol{&a.DeletedAt},
		&a.ActiveKeys, &a.OrphanedKeys)
	return a, err
}

// GetApp returns a live app of an organization with its key counts.
func (s *Store) GetApp(ctx context.Context, orgID, id string, now time.Time) (App, error) {
	return one(scanApp(s.db.QueryRowContext(ctx, `SELECT `+appCols+` FROM apps a WHERE a.id = $2 AND a.org_id = $3 AND a.deleted_at IS NULL`, micros(now), id, orgID)))
}

// LiveApp returns a live app of an organization without its key counts,
// which cost a scan of the app's keys: creating a key needs only the app.
func (s *Store) LiveApp(ctx context.Context, orgID, id string) (App, error) {
	var a App
	err := s.db.QueryRowContext(ctx, `SELECT id, org_id, name, kind, created_at, created_by FROM apps WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, id, orgID).
		Scan(&a.ID, &a.OrgID, &a.Name, &a.Kind, timeCol{&a.CreatedAt}, &a.CreatedBy)
	return one(a, err)
}

// ListApps lists an organization's live apps with their key counts.
func (s *Store) ListApps(ctx context.Context, orgID string, now time.Time) ([]App, error) {
	apps, err := queryAll(ctx, s.db, scanApp, `SELECT `+appCols+` FROM apps a WHERE a.org_id = $2 AND a.deleted_at IS NULL ORDER BY a.created_at, a.id`, micros(now), orgID)
	return apps, classify(err)
}

// DeleteApp deletes an app softly, orphans its live keys (reason
// app_deleted) and writes an app.deleted event after their key.orphaned ones.
func (s *Store) DeleteApp(ctx context.Context, orgID, id, actor string, at time.Time) (orphaned int, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := softDelete(ctx, tx, "apps", orgID, id, at); err != nil {
			return err
		}
		var err error
		if orphaned, err = orphanKeys(ctx, tx, `app_id = $1`, id, OrphanAppDeleted, at); err != nil {
			return err
		}
		if err := addEvent(ctx, tx, Event{OrgID: orgID, AppID: id, Type: EventAppDeleted, At: at}); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "app.delete", Target: id, Detail: fmt.Sprintf("orphaned %d keys", orphaned)})
	})
	return orphaned, err
}
