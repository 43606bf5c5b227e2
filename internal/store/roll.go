package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Why a key cannot be rolled, besides ErrOrphaned and ErrNotFound.
var (
	ErrKeyRevoked = errors.New("key is revoked")
	ErrKeyExpired = errors.New("key has expired")
	ErrKeyRolled  = errors.New("key was already rolled")
)

// KeyRoll asks RollKey to replace a live key with New.
type KeyRoll struct {
	OrgID string
	OldID string
	// New is the new key: its ID, Prefix, Hash, ExpiresAt, CreatedAt,
	// CreatedBy and CreatorEmail. Its app and name are the old key's.
	New Key
	// OldExpiresAt is when the old key stops at the latest; it keeps its
	// own expiry when that is sooner. Ignored when RevokeOld.
	OldExpiresAt time.Time
	// RevokeOld revokes the old key at once (a roll without overlap).
	RevokeOld bool
	// SaveAs, when set, names a secret that gets the new key: a new one, or
	// one that holds the old key. A secret holding anything else is
	// ErrSecretConflict.
	SaveAs string
	// Seal seals the new key as the value of the named secret. It is
	// called inside the transaction for SaveAs and for every secret that
	// holds the old key, which all get the new one.
	Seal func(secretName string) ([]byte, error)
}

// RolledKey is what a roll did: the old key after it, the new key, and the
// secrets that now hold the new key, by name.
type RolledKey struct {
	Old, New Key
	Secrets  []string
}

// RollKey replaces a live key of an organization with a new key for the
// same app and name, in one transaction: the old key is marked rolled and
// stops at OldExpiresAt or its own expiry, whichever is sooner (never
// later), or is revoked; the new key is inserted; the secrets holding the
// old key (and SaveAs) get the new one; the audit records and the feed
// events (key.expiry_changed when the old key's expiry moved,
// key.revoked when it was revoked) are written. A key of another
// organization, or none, is ErrNotFound; an orphaned, revoked, expired or
// already rolled key is ErrOrphaned, ErrKeyRevoked, ErrKeyExpired or
// ErrKeyRolled. Of concurrent rolls of one key exactly one succeeds.
func (s *Store) RollKey(ctx context.Context, r KeyRoll) (RolledKey, error) {
	var out RolledKey
	at := r.New.CreatedAt
	err := s.write(ctx, func(tx *sql.Tx) error {
		old, err := one(scanKey(tx.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1 AND k.org_id = $2`, r.OldID, r.OrgID)))
		if err != nil {
			return err
		}
		if err := rollable(old, at); err != nil {
			return err
		}
		// Lock in CreateKey's order (app, then user, then keys), so that a
		// concurrent deletion of the app or the roller either waits for this
		// roll, and then orphans the new key too, or wins and is seen here.
		if err := execOne(ctx, tx, ErrOrphaned, `UPDATE apps SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, old.AppID, r.OrgID); err != nil {
			return err
		}
		if err := execOne(ctx, tx, ErrCreatorGone, `UPDATE users SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, r.New.CreatedBy, r.OrgID); err != nil {
			return err
		}
		// The decision: of two rolls (or a roll and a revoke) that both
		// read the key as live, the row lock makes the second UPDATE see
		// the first's commit and match nothing. The old key's expiry only
		// ever moves earlier.
		var res sql.Result
		if r.RevokeOld {
			res, err = tx.ExecContext(ctx, `UPDATE api_keys SET rolled_to = $1, revoked_at = $2, revoked_by = $3
				WHERE id = $4 AND revoked_at IS NULL AND orphaned_at IS NULL AND rolled_to IS NULL AND expires_at > $2`,
				r.New.ID, micros(at), r.New.CreatedBy, old.ID)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE api_keys SET rolled_to = $1, expires_at = CASE WHEN expires_at < $2 THEN expires_at ELSE $2 END
				WHERE id = $3 AND revoked_at IS NULL AND orphaned_at IS NULL AND rolled_to IS NULL AND expires_at > $4`,
				r.New.ID, micros(r.OldExpiresAt), old.ID, micros(at))
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			now, err := one(scanKey(tx.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1`, old.ID)))
			if err != nil {
				return err
			}
			if err := rollable(now, at); err != nil {
				return err
			}
			return ErrKeyRolled // cannot happen: the row matched nothing but is rollable
		}
		after, err := one(scanKey(tx.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1`, old.ID)))
		if err != nil {
			return err
		}
		nk := r.New
		nk.OrgID, nk.AppID, nk.AppName, nk.Name, nk.RolledFrom = r.OrgID, old.AppID, old.AppName, old.Name, old.ID
		// The new key inherits the old one's limits: a roll must never
		// lift a rate limit or a network restriction.
		nk.Limits = old.Limits
		rate, per, cidrs := limitArgs(nk.Limits)
		_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (id, org_id, app_id, name, prefix, hash, expires_at, created_at, created_by, rolled_from, rate_requests, rate_per_seconds, allowed_cidrs)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			nk.ID, nk.OrgID, nk.AppID, nk.Name, nk.Prefix, nk.Hash, micros(nk.ExpiresAt), micros(nk.CreatedAt), nk.CreatedBy, nk.RolledFrom, rate, per, cidrs)
		if err != nil {
			return err
		}
		secrets, err := rollSecrets(ctx, tx, r, old.ID, nk.ID, at)
		if err != nil {
			return err
		}
		if err := rollRecords(ctx, tx, old, after, nk, at); err != nil {
			return err
		}
		out = RolledKey{Old: after, New: nk, Secrets: secrets}
		return nil
	})
	return out, err
}

// rollable says why k cannot be rolled at at, or nil.
func rollable(k Key, at time.Time) error {
	switch {
	case k.RevokedAt != nil:
		return ErrKeyRevoked
	case k.OrphanedAt != nil:
		return ErrOrphaned
	case k.RolledTo != "":
		return ErrKeyRolled
	case !k.ExpiresAt.After(at):
		return ErrKeyExpired
	}
	return nil
}

// rollSecrets gives the new key to the secrets that hold the old one and
// to r.SaveAs, and returns their names in order.
func rollSecrets(ctx context.Context, tx *sql.Tx, r KeyRoll, oldID, newID string, at time.Time) ([]string, error) {
	names, err := queryAll(ctx, tx, func(row rowScanner) (string, error) {
		var n string
		return n, row.Scan(&n)
	}, `SELECT name FROM secrets WHERE org_id = $1 AND key_id = $2 ORDER BY name`, r.OrgID, oldID)
	if err != nil {
		return nil, err
	}
	var create bool
	if r.SaveAs != "" {
		var holds sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT key_id FROM secrets WHERE org_id = $1 AND name = $2`, r.OrgID, r.SaveAs).Scan(&holds)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			create = true
		case err != nil:
			return nil, err
		case holds.String != oldID:
			return nil, ErrSecretConflict // a value set by hand, or another key
		}
	}
	updated := names[:0:0]
	for _, name := range names {
		sealed, err := r.Seal(name)
		if err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, `UPDATE secrets SET ciphertext = $1, key_id = $2, updated_at = $6 WHERE org_id = $3 AND name = $4 AND key_id = $5`,
			sealed, newID, r.OrgID, name, oldID, micros(at))
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // deleted since it was listed: nothing to update
		}
		updated = append(updated, name)
		if err := addAudit(ctx, tx, Audit{OrgID: r.OrgID, At: at, Actor: r.New.CreatedBy, Action: "secret.update", Target: name, Detail: "now holds key " + newID + ", rolled from " + oldID}); err != nil {
			return nil, err
		}
	}
	if create {
		sealed, err := r.Seal(r.SaveAs)
		if err != nil {
			return nil, err
		}
		if err := insertSecret(ctx, tx, Secret{OrgID: r.OrgID, Name: r.SaveAs, Ciphertext: sealed, CreatedAt: at, CreatedBy: r.New.CreatedBy, KeyID: newID}); err != nil {
			if errors.Is(classify(err), ErrConflict) {
				return nil, ErrSecretConflict // created meanwhile, by hand or another roll
			}
			return nil, err
		}
		if err := addAudit(ctx, tx, Audit{OrgID: r.OrgID, At: at, Actor: r.New.CreatedBy, Action: "secret.create", Target: r.SaveAs, Detail: "holds key " + newID + ", rolled from " + oldID}); err != nil {
			return nil, err
		}
		updated = append(updated, r.SaveAs)
	}
	return updated, nil
}

// rollRecords writes a roll's audit records and feed events: the old key's
// (before and after the roll) and the new key's.
func rollRecords(ctx context.Context, tx *sql.Tx, before, after, nk Key, at time.Time) error {
	actor := nk.CreatedBy
	detail := "to " + nk.ID + ", old key expires " + after.ExpiresAt.Format(time.RFC3339)
	switch {
	case after.RevokedAt != nil:
		detail = "to " + nk.ID + ", old key revoked"
		if err := addEvent(ctx, tx, Event{OrgID: after.OrgID, AppID: after.AppID, Type: EventKeyRevoked, KeyID: after.ID, At: at}); err != nil {
			return err
		}
		if err := addAudit(ctx, tx, Audit{OrgID: after.OrgID, At: at, Actor: actor, Action: "key.revoke", Target: after.ID, Detail: "was active, rolled to " + nk.ID}); err != nil {
			return err
		}
	case after.ExpiresAt.Before(before.ExpiresAt):
		exp := after.ExpiresAt
		if err := addEvent(ctx, tx, Event{OrgID: after.OrgID, AppID: after.AppID, Type: EventKeyExpiryChanged, KeyID: after.ID, At: at, ExpiresAt: &exp}); err != nil {
			return err
		}
	}
	if err := addAudit(ctx, tx, Audit{OrgID: after.OrgID, At: at, Actor: actor, Action: "key.roll", Target: after.ID, Detail: detail}); err != nil {
		return err
	}
	return addAudit(ctx, tx, Audit{OrgID: nk.OrgID, At: at, Actor: actor, Action: "key.create", Target: nk.ID, Detail: "app " + nk.AppID + ", rolled from " + after.ID})
}
