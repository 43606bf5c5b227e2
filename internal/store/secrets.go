package store

import (
	"context"
	"database/sql"
	"time"
)

func insertSecret(ctx context.Context, tx *sql.Tx, sec Secret) error {
	var keyID sql.NullString
	if sec.KeyID != "" {
		keyID = sql.NullString{String: sec.KeyID, Valid: true}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO secrets (org_id, name, ciphertext, created_at, created_by, key_id) VALUES ($1, $2, $3, $4, $5, $6)`,
		sec.OrgID, sec.Name, sec.Ciphertext, micros(sec.CreatedAt), sec.CreatedBy, keyID)
	return err
}

// CreateSecret stores a sealed secret; a taken name is ErrConflict.
func (s *Store) CreateSecret(ctx context.Context, sec Secret) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := insertSecret(ctx, tx, sec); err != nil {
			return err
		}
		var detail string
		if sec.KeyID != "" { // Save As Secret: the key's history shows it
			detail = "holds key " + sec.KeyID
		}
		return addAudit(ctx, tx, Audit{OrgID: sec.OrgID, At: sec.CreatedAt, Actor: sec.CreatedBy, Action: "secret.create", Target: sec.Name, Detail: detail})
	})
}

// ListSecrets lists an organization's secrets without their values.
func (s *Store) ListSecrets(ctx context.Context, orgID string) ([]Secret, error) {
	secrets, err := queryAll(ctx, s.db, func(row rowScanner) (Secret, error) {
		var sec Secret
		var keyID sql.NullString
		err := row.Scan(&sec.OrgID, &sec.Name, timeCol{&sec.CreatedAt}, &sec.CreatedBy, &keyID, nullTimeCol{&sec.UpdatedAt})
		sec.KeyID = keyID.String
		return sec, err
	}, `SELECT org_id, name, created_at, created_by, key_id, updated_at FROM secrets WHERE org_id = $1 ORDER BY name`, orgID)
	return secrets, classify(err)
}

// ReadSecret returns a sealed secret and records the access in the audit log,
// in one transaction.
func (s *Store) ReadSecret(ctx context.Context, orgID, name, actor string, at time.Time) (Secret, error) {
	var sec Secret
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT org_id, name, ciphertext, created_at, created_by FROM secrets WHERE org_id = $1 AND name = $2`, orgID, name).
			Scan(&sec.OrgID, &sec.Name, &sec.Ciphertext, timeCol{&sec.CreatedAt}, &sec.CreatedBy)
		if err != nil {
			return notFound(err)
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "secret.read", Target: name})
	})
	if err != nil {
		return Secret{}, err
	}
	return sec, nil
}

// DeleteSecret deletes a secret.
func (s *Store) DeleteSecret(ctx context.Context, orgID, name, actor string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, ErrNotFound, `DELETE FROM secrets WHERE org_id = $1 AND name = $2`, orgID, name); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "secret.delete", Target: name})
	})
}
