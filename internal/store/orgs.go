package store

import (
	"context"
	"database/sql"
	"fmt"
)

// IsEmpty reports whether the store has no platform admin yet (a fresh store).
func (s *Store) IsEmpty(ctx context.Context) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM platform_admins`).Scan(&n); err != nil {
		return false, classify(err)
	}
	return n == 0, nil
}

// IsAdmin reports whether tokenHash belongs to a platform admin.
func (s *Store) IsAdmin(ctx context.Context, tokenHash string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM platform_admins WHERE token_hash = $1`, tokenHash).Scan(&n); err != nil {
		return false, classify(err)
	}
	return n > 0, nil
}

// insertOrg writes an organization, its owner and the org.create audit
// record (with detail) inside tx.
func insertOrg(ctx context.Context, tx *sql.Tx, org Org, owner User, actor, detail string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, org.ID, org.Name, micros(org.CreatedAt)); err != nil {
		return err
	}
	if err := insertUser(ctx, tx, owner); err != nil {
		return err
	}
	return addAudit(ctx, tx, Audit{OrgID: org.ID, At: org.CreatedAt, Actor: actor, Action: "org.create", Target: org.ID, Detail: detail})
}

// CreateOrg creates an organization and its owner in one transaction.
func (s *Store) CreateOrg(ctx context.Context, org Org, owner User, actor string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return insertOrg(ctx, tx, org, owner, actor, "owner "+owner.ID)
	})
}

// GetOrg returns an organization.
func (s *Store) GetOrg(ctx context.Context, id string) (Org, error) {
	var o Org
	err := s.db.QueryRowContext(ctx, `SELECT id, name, created_at FROM orgs WHERE id = $1`, id).Scan(&o.ID, &o.Name, timeCol{&o.CreatedAt})
	return one(o, err)
}

// Bootstrap makes an empty store usable in one transaction: the platform
// admin, the first organization and its owner. persist runs inside the
// transaction, before it commits, so that the tokens are saved before the
// store can be seen as bootstrapped: a crash in between leaves an empty
// store that the next start bootstraps again. created is false, and nothing
// is written, when the store already has an admin (another replica was
// first).
func (s *Store) Bootstrap(ctx context.Context, adminHash string, org Org, owner User, persist func() error) (created bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		if s.dialect == "postgres" {
			// Replicas starting together on an empty database: one wins.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7366053)`); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM platform_admins`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO platform_admins (token_hash, created_at) VALUES ($1, $2)`, adminHash, micros(org.CreatedAt)); err != nil {
			return err
		}
		if err := insertOrg(ctx, tx, org, owner, "system", "bootstrap, owner "+owner.ID); err != nil {
			return err
		}
		if err := persist(); err != nil {
			return fmt.Errorf("save bootstrap tokens: %w", err)
		}
		created = true
		return nil
	})
	return created, err
}
