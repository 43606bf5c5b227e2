package store

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"time"
)

// CreateKey stores a key. When secret is not nil it is stored in the same
// transaction (the key saved straight into the Secrets store).
func (s *Store) CreateKey(ctx context.Context, k Key, secret *Secret) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// The app and the creator must still be live, and must stay so until
		// this commits: a key made while its app or creator is being deleted
		// would otherwise be born active and never orphaned. The no-op
		// UPDATEs take the rows' locks (PostgreSQL), so a concurrent delete
		// waits for this transaction and then orphans the new key too.
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE apps SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, k.AppID, k.OrgID); err != nil {
			return err
		}
		if err := execOne(ctx, tx, ErrCreatorGone, `UPDATE users SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, k.CreatedBy, k.OrgID); err != nil {
			return err
		}
		rate, per, cidrs := limitArgs(k.Limits)
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, org_id, app_id, name, prefix, hash, expires_at, created_at, created_by, rate_requests, rate_per_seconds, allowed_cidrs)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			k.ID, k.OrgID, k.AppID, k.Name, k.Prefix, k.Hash, micros(k.ExpiresAt), micros(k.CreatedAt), k.CreatedBy, rate, per, cidrs)
		if err != nil {
			return err
		}
		detail := "app " + k.AppID
		if secret != nil {
			secret.KeyID = k.ID // so that a roll of this key finds the secret
			if err := insertSecret(ctx, tx, *secret); err != nil {
				if errors.Is(classify(err), ErrConflict) {
					return ErrSecretConflict
				}
				return err
			}
			detail += ", saved as secret " + secret.Name
		}
		if d := k.Limits.String(); d != "" {
			detail += ", " + d
		}
		return addAudit(ctx, tx, Audit{OrgID: k.OrgID, At: k.CreatedAt, Actor: k.CreatedBy, Action: "key.create", Target: k.ID, Detail: detail})
	})
}

// RevokeKey revokes a live key of an organization and writes a key.revoked
// event. An orphaned key is revoked only when mayRevokeOrphaned; otherwise
// ErrOrphaned. A key already revoked, or of another organization, is
// ErrNotFound: of two concurrent revokes exactly one succeeds.
func (s *Store) RevokeKey(ctx context.Context, orgID, id, actor string, mayRevokeOrphaned bool, at time.Time) (Key, error) {
	var k Key
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = one(scanKey(tx.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1 AND k.org_id = $2 AND k.revoked_at IS NULL`, id, orgID)))
		if err != nil {
			return err
		}
		if k.OrphanedAt != nil && !mayRevokeOrphaned {
			return ErrOrphaned
		}
		// Two revokes may both have read the key as live; the row lock makes
		// the second UPDATE see the first's commit and match nothing.
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE api_keys SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL`, micros(at), actor, id); err != nil {
			return err
		}
		if err := addEvent(ctx, tx, Event{OrgID: orgID, AppID: k.AppID, Type: EventKeyRevoked, KeyID: id, At: at}); err != nil {
			return err
		}
		detail := "was active"
		if k.OrphanedAt != nil {
			detail = "was orphaned (" + k.OrphanReason + ")"
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "key.revoke", Target: id, Detail: detail})
	})
	if err != nil {
		return Key{}, err
	}
	k.RevokedAt = &at
	return k, nil
}

// orphanKeys marks the live, not yet orphaned keys matching cond (with one
// argument) as orphaned, writing a key.orphaned event and an audit record
// for each.
func orphanKeys(ctx context.Context, tx *sql.Tx, cond, arg, reason string, at time.Time) (int, error) {
	keys, err := queryAll(ctx, tx, func(row rowScanner) (Key, error) {
		var k Key
		err := row.Scan(&k.ID, &k.OrgID, &k.AppID)
		return k, err
	}, `SELECT id, org_id, app_id FROM api_keys WHERE `+cond+` AND revoked_at IS NULL AND orphaned_at IS NULL ORDER BY id`, arg)
	if err != nil {
		return 0, err
	}
	orphaned := 0
	for _, k := range keys {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET orphaned_at = $1, orphan_reason = $2 WHERE id = $3 AND revoked_at IS NULL AND orphaned_at IS NULL`, micros(at), reason, k.ID)
		if err != nil {
			return 0, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // revoked or orphaned by a transaction that committed meanwhile
		}
		orphaned++
		if err := addEvent(ctx, tx, Event{OrgID: k.OrgID, AppID: k.AppID, Type: EventKeyOrphaned, KeyID: k.ID, At: at}); err != nil {
			return 0, err
		}
		if err := addAudit(ctx, tx, Audit{OrgID: k.OrgID, At: at, Actor: "system", Action: "key.orphan", Target: k.ID, Detail: reason}); err != nil {
			return 0, err
		}
	}
	return orphaned, nil
}

// touchChunk is how many last-used times one transaction writes.
const touchChunk = 100

// TouchKeys records last-used times, never moving one back. It writes them
// in short transactions of touchChunk keys, in id order: one transaction
// over thousands of keys would hold their rows locked for as long as it
// takes (a revoke of any of them waiting behind it), and two replicas
// locking overlapping keys in different orders could deadlock.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	return s.touch(ctx, "api_keys", used)
}

// touch records the last-used times of rows of table (api_keys or
// verifier_tokens), as TouchKeys describes.
func (s *Store) touch(ctx context.Context, table string, used map[string]time.Time) error {
	ids := slices.Sorted(maps.Keys(used))
	for chunk := range slices.Chunk(ids, touchChunk) {
		err := s.write(ctx, func(tx *sql.Tx) error {
			for _, id := range chunk {
				at := micros(used[id])
				if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, at, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
