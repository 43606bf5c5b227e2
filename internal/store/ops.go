package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
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

// addEvent appends an event inside tx. The UPDATE … RETURNING takes the
// counter row's lock until commit, which orders event-writing transactions.
func addEvent(ctx context.Context, tx *sql.Tx, e Event) error {
	var seq int64
	if err := tx.QueryRowContext(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'event_seq' RETURNING value`).Scan(&seq); err != nil {
		return fmt.Errorf("take event sequence: %w", err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO events (seq, org_id, app_id, type, key_id, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		seq, e.OrgID, e.AppID, e.Type, e.KeyID, micros(e.At))
	if err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return nil
}

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

// CreateOrg creates an organization and its owner in one transaction.
func (s *Store) CreateOrg(ctx context.Context, org Org, owner User, actor string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, org.ID, org.Name, micros(org.CreatedAt)); err != nil {
			return err
		}
		if err := insertUser(ctx, tx, owner); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: org.ID, At: org.CreatedAt, Actor: actor, Action: "org.create", Target: org.ID, Detail: "owner " + owner.ID})
	})
}

func insertUser(ctx context.Context, tx *sql.Tx, u User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users (id, org_id, email, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		u.ID, u.OrgID, u.Email, u.Role, u.TokenHash, micros(u.CreatedAt))
	return err
}

// GetOrg returns an organization.
func (s *Store) GetOrg(ctx context.Context, id string) (Org, error) {
	var o Org
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, created_at FROM orgs WHERE id = $1`, id).Scan(&o.ID, &o.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Org{}, ErrNotFound
	}
	if err != nil {
		return Org{}, classify(err)
	}
	o.CreatedAt = fromMicros(created)
	return o, nil
}

// CreateUser adds a user to an organization.
func (s *Store) CreateUser(ctx context.Context, u User, actor string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: u.OrgID, At: u.CreatedAt, Actor: actor, Action: "user.create", Target: u.ID, Detail: "role " + u.Role})
	})
}

const userCols = `id, org_id, email, role, token_hash, created_at, deleted_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	var deleted sql.NullInt64
	if err := row.Scan(&u.ID, &u.OrgID, &u.Email, &u.Role, &u.TokenHash, &created, &deleted); err != nil {
		return User{}, err
	}
	u.CreatedAt = fromMicros(created)
	u.DeletedAt = nullTime(deleted)
	return u, nil
}

// UserByTokenHash finds the live user whose token hashes to h.
func (s *Store) UserByTokenHash(ctx context.Context, h string) (User, error) {
	defer s.timed("token_lookup")()
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE token_hash = $1 AND deleted_at IS NULL`, h))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, classify(err)
}

// GetUser returns a live user of an organization.
func (s *Store) GetUser(ctx context.Context, orgID, id string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, id, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, classify(err)
}

// ListUsers lists an organization's live users, oldest first.
func (s *Store) ListUsers(ctx context.Context, orgID string) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, u)
	}
	return out, classify(rows.Err())
}

// DeleteUser deletes a user softly, ends their console sessions and orphans
// the live keys they created (reason creator_deleted), with an event for
// each key.
func (s *Store) DeleteUser(ctx context.Context, orgID, id, actor string, at time.Time) (orphaned int, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET deleted_at = $1 WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL`, micros(at), id, orgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE user_id = $1`, id); err != nil {
			return err
		}
		orphaned, err = orphanKeys(ctx, tx, `created_by = $1`, id, OrphanCreatorDeleted, at)
		if err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "user.delete", Target: id, Detail: fmt.Sprintf("orphaned %d keys", orphaned)})
	})
	return orphaned, err
}

// orphanKeys marks the live, not yet orphaned keys matching cond (with one
// argument) as orphaned, writing a key.orphaned event and an audit record
// for each.
func orphanKeys(ctx context.Context, tx *sql.Tx, cond, arg, reason string, at time.Time) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, org_id, app_id FROM api_keys WHERE `+cond+` AND revoked_at IS NULL AND orphaned_at IS NULL ORDER BY id`, arg)
	if err != nil {
		return 0, err
	}
	var keys []Key
	for rows.Next() {
		var k Key
		if err := rows.Scan(&k.ID, &k.OrgID, &k.AppID); err != nil {
			rows.Close()
			return 0, err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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

// CreateApp creates an app.
func (s *Store) CreateApp(ctx context.Context, a App) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO apps (id, org_id, name, kind, verifier_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.ID, a.OrgID, a.Name, a.Kind, a.VerifierHash, micros(a.CreatedAt), a.CreatedBy)
		if err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: a.OrgID, At: a.CreatedAt, Actor: a.CreatedBy, Action: "app.create", Target: a.ID, Detail: a.Kind})
	})
}

// appCols counts keys with a correlated subquery; now decides expiry.
const appCols = `a.id, a.org_id, a.name, a.kind, a.verifier_hash, a.created_at, a.created_by, a.deleted_at,
	(SELECT count(*) FROM api_keys k WHERE k.app_id = a.id AND k.revoked_at IS NULL AND k.orphaned_at IS NULL AND k.expires_at > $1),
	(SELECT count(*) FROM api_keys k WHERE k.app_id = a.id AND k.revoked_at IS NULL AND k.orphaned_at IS NOT NULL)`

func scanApp(row interface{ Scan(...any) error }) (App, error) {
	var a App
	var created int64
	var deleted sql.NullInt64
	if err := row.Scan(&a.ID, &a.OrgID, &a.Name, &a.Kind, &a.VerifierHash, &created, &a.CreatedBy, &deleted, &a.ActiveKeys, &a.OrphanedKeys); err != nil {
		return App{}, err
	}
	a.CreatedAt = fromMicros(created)
	a.DeletedAt = nullTime(deleted)
	return a, nil
}

// GetApp returns a live app of an organization with its key counts.
func (s *Store) GetApp(ctx context.Context, orgID, id string, now time.Time) (App, error) {
	a, err := scanApp(s.db.QueryRowContext(ctx, `SELECT `+appCols+` FROM apps a WHERE a.id = $2 AND a.org_id = $3 AND a.deleted_at IS NULL`, micros(now), id, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return App{}, ErrNotFound
	}
	return a, classify(err)
}

// LiveApp returns a live app of an organization without its key counts,
// which cost a scan of the app's keys: creating a key needs only the app.
func (s *Store) LiveApp(ctx context.Context, orgID, id string) (App, error) {
	var a App
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, org_id, name, kind, verifier_hash, created_at, created_by FROM apps WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, id, orgID).
		Scan(&a.ID, &a.OrgID, &a.Name, &a.Kind, &a.VerifierHash, &created, &a.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return App{}, ErrNotFound
	}
	a.CreatedAt = fromMicros(created)
	return a, classify(err)
}

const appByVerifierSQL = `SELECT id, org_id, name, kind, created_at, created_by, deleted_at FROM apps WHERE verifier_hash = $1`

// AppByVerifierHash finds the app whose verifier token hashes to h, deleted
// or not (DeletedAt says which): a deleted app's sidecar may still ask about
// keys, which answer ORPHANED, and read the feed to its app.deleted event.
func (s *Store) AppByVerifierHash(ctx context.Context, h string) (App, error) {
	defer s.timed("verifier_lookup")()
	var a App
	var created int64
	var deleted sql.NullInt64
	err := s.appByVerifier.QueryRowContext(ctx, h).
		Scan(&a.ID, &a.OrgID, &a.Name, &a.Kind, &created, &a.CreatedBy, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return App{}, ErrNotFound
	}
	a.CreatedAt = fromMicros(created)
	a.DeletedAt = nullTime(deleted)
	return a, classify(err)
}

// ListApps lists an organization's live apps with their key counts.
func (s *Store) ListApps(ctx context.Context, orgID string, now time.Time) ([]App, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+appCols+` FROM apps a WHERE a.org_id = $2 AND a.deleted_at IS NULL ORDER BY a.created_at, a.id`, micros(now), orgID)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, a)
	}
	return out, classify(rows.Err())
}

// DeleteApp deletes an app softly, orphans its live keys (reason
// app_deleted) and writes an app.deleted event after their key.orphaned ones.
func (s *Store) DeleteApp(ctx context.Context, orgID, id, actor string, at time.Time) (orphaned int, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE apps SET deleted_at = $1 WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL`, micros(at), id, orgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
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

// CreateKey stores a key. When secret is not nil it is stored in the same
// transaction (the key saved straight into the Secrets store).
func (s *Store) CreateKey(ctx context.Context, k Key, secret *Secret) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// The app and the creator must still be live, and must stay so until
		// this commits: a key made while its app or creator is being deleted
		// would otherwise be born active and never orphaned. The no-op
		// UPDATEs take the rows' locks (PostgreSQL), so a concurrent delete
		// waits for this transaction and then orphans the new key too.
		res, err := tx.ExecContext(ctx, `UPDATE apps SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, k.AppID, k.OrgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		res, err = tx.ExecContext(ctx, `UPDATE users SET deleted_at = deleted_at WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`, k.CreatedBy, k.OrgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrCreatorGone
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (id, org_id, app_id, name, prefix, hash, expires_at, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			k.ID, k.OrgID, k.AppID, k.Name, k.Prefix, k.Hash, micros(k.ExpiresAt), micros(k.CreatedAt), k.CreatedBy)
		if err != nil {
			return err
		}
		detail := "app " + k.AppID
		if secret != nil {
			if err := insertSecret(ctx, tx, *secret); err != nil {
				if errors.Is(classify(err), ErrConflict) {
					return ErrSecretConflict
				}
				return err
			}
			detail += ", saved as secret " + secret.Name
		}
		return addAudit(ctx, tx, Audit{OrgID: k.OrgID, At: k.CreatedAt, Actor: k.CreatedBy, Action: "key.create", Target: k.ID, Detail: detail})
	})
}

const keyCols = `k.id, k.org_id, k.app_id, a.name, k.name, k.prefix, k.hash, k.expires_at, k.created_at, k.created_by, u.email,
	k.revoked_at, k.orphaned_at, k.orphan_reason, k.last_used_at`

const keyFrom = ` FROM api_keys k JOIN apps a ON a.id = k.app_id JOIN users u ON u.id = k.created_by`

func scanKey(row interface{ Scan(...any) error }) (Key, error) {
	var k Key
	var expires, created int64
	var revoked, orphaned, lastUsed sql.NullInt64
	var reason sql.NullString
	if err := row.Scan(&k.ID, &k.OrgID, &k.AppID, &k.AppName, &k.Name, &k.Prefix, &k.Hash, &expires, &created, &k.CreatedBy, &k.CreatorEmail,
		&revoked, &orphaned, &reason, &lastUsed); err != nil {
		return Key{}, err
	}
	k.ExpiresAt = fromMicros(expires)
	k.CreatedAt = fromMicros(created)
	k.RevokedAt = nullTime(revoked)
	k.OrphanedAt = nullTime(orphaned)
	k.OrphanReason = reason.String
	k.LastUsedAt = nullTime(lastUsed)
	return k, nil
}

const keyByHashSQL = `SELECT ` + keyCols + keyFrom + ` WHERE k.hash = $1`

// keyForVerifySQL reads api_keys alone: a verdict needs neither the app's
// name nor the creator's email, and the two joins cost two more index probes
// and row reads per verify.
const keyForVerifySQL = `SELECT id, org_id, app_id, name, expires_at, revoked_at, orphaned_at, orphan_reason, last_used_at FROM api_keys WHERE hash = $1`

// KeyForVerify finds a key, revoked or not, by one of its candidate hashes,
// with what a verify needs: Key's AppName, Prefix, Hash, CreatedAt,
// CreatedBy and CreatorEmail are left empty.
func (s *Store) KeyForVerify(ctx context.Context, hashes ...string) (Key, error) {
	defer s.timed("key_lookup")()
	for _, h := range hashes {
		var k Key
		var expires int64
		var revoked, orphaned, lastUsed sql.NullInt64
		var reason sql.NullString
		err := s.keyForVerify.QueryRowContext(ctx, h).Scan(&k.ID, &k.OrgID, &k.AppID, &k.Name, &expires, &revoked, &orphaned, &reason, &lastUsed)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return Key{}, classify(err)
		}
		k.ExpiresAt = fromMicros(expires)
		k.RevokedAt = nullTime(revoked)
		k.OrphanedAt = nullTime(orphaned)
		k.OrphanReason = reason.String
		k.LastUsedAt = nullTime(lastUsed)
		return k, nil
	}
	return Key{}, ErrNotFound
}

// KeyByHash finds a key, revoked or not, by one of its candidate hashes.
func (s *Store) KeyByHash(ctx context.Context, hashes ...string) (Key, error) {
	defer s.timed("key_lookup")()
	for _, h := range hashes {
		k, err := scanKey(s.keyByHash.QueryRowContext(ctx, h))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		return k, classify(err)
	}
	return Key{}, ErrNotFound
}

// GetKey returns a key of an organization, revoked or not.
func (s *Store) GetKey(ctx context.Context, orgID, id string) (Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1 AND k.org_id = $2`, id, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrNotFound
	}
	return k, classify(err)
}

// ListKeys lists the keys f selects, newest first. Revoked keys are never
// listed.
func (s *Store) ListKeys(ctx context.Context, f KeyFilter) ([]Key, error) {
	q := `SELECT ` + keyCols + keyFrom + ` WHERE k.org_id = $1 AND k.revoked_at IS NULL`
	args := []any{f.OrgID}
	if f.AppID != "" {
		args = append(args, f.AppID)
		q += fmt.Sprintf(` AND k.app_id = $%d`, len(args))
	}
	switch f.Select {
	case AnyKey:
	case UnexpiredKeys:
		args = append(args, micros(f.Now))
		q += fmt.Sprintf(` AND k.orphaned_at IS NULL AND k.expires_at > $%d`, len(args))
	case ExpiredKeys:
		args = append(args, micros(f.Now))
		q += fmt.Sprintf(` AND k.orphaned_at IS NULL AND k.expires_at <= $%d`, len(args))
	case OrphanedKeys:
		q += ` AND k.orphaned_at IS NOT NULL`
	default:
		return nil, fmt.Errorf("unknown key selection %d", f.Select)
	}
	q += ` ORDER BY k.created_at DESC, k.id`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, k)
	}
	return out, classify(rows.Err())
}

// RevokeKey revokes a live key of an organization and writes a key.revoked
// event. An orphaned key is revoked only when mayRevokeOrphaned; otherwise
// ErrOrphaned. A key already revoked, or of another organization, is
// ErrNotFound: of two concurrent revokes exactly one succeeds.
func (s *Store) RevokeKey(ctx context.Context, orgID, id, actor string, mayRevokeOrphaned bool, at time.Time) (Key, error) {
	var k Key
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = scanKey(tx.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1 AND k.org_id = $2 AND k.revoked_at IS NULL`, id, orgID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if k.OrphanedAt != nil && !mayRevokeOrphaned {
			return ErrOrphaned
		}
		// Two revokes may both have read the key as live; the row lock makes
		// the second UPDATE see the first's commit and match nothing.
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL`, micros(at), actor, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
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

// touchChunk is how many last-used times one transaction writes.
const touchChunk = 100

// TouchKeys records last-used times, never moving one back. It writes them
// in short transactions of touchChunk keys, in id order: one transaction
// over thousands of keys would hold their rows locked for as long as it
// takes (a revoke of any of them waiting behind it), and two replicas
// locking overlapping keys in different orders could deadlock.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	ids := slices.Sorted(maps.Keys(used))
	for chunk := range slices.Chunk(ids, touchChunk) {
		err := s.write(ctx, func(tx *sql.Tx) error {
			for _, id := range chunk {
				at := micros(used[id])
				if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, at, id); err != nil {
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

func insertSecret(ctx context.Context, tx *sql.Tx, sec Secret) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO secrets (org_id, name, ciphertext, created_at, created_by) VALUES ($1, $2, $3, $4, $5)`,
		sec.OrgID, sec.Name, sec.Ciphertext, micros(sec.CreatedAt), sec.CreatedBy)
	return err
}

// CreateSecret stores a sealed secret; a taken name is ErrConflict.
func (s *Store) CreateSecret(ctx context.Context, sec Secret) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := insertSecret(ctx, tx, sec); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: sec.OrgID, At: sec.CreatedAt, Actor: sec.CreatedBy, Action: "secret.create", Target: sec.Name})
	})
}

// ListSecrets lists an organization's secrets without their values.
func (s *Store) ListSecrets(ctx context.Context, orgID string) ([]Secret, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT org_id, name, created_at, created_by FROM secrets WHERE org_id = $1 ORDER BY name`, orgID)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []Secret{}
	for rows.Next() {
		var sec Secret
		var created int64
		if err := rows.Scan(&sec.OrgID, &sec.Name, &created, &sec.CreatedBy); err != nil {
			return nil, classify(err)
		}
		sec.CreatedAt = fromMicros(created)
		out = append(out, sec)
	}
	return out, classify(rows.Err())
}

// ReadSecret returns a sealed secret and records the access in the audit log,
// in one transaction.
func (s *Store) ReadSecret(ctx context.Context, orgID, name, actor string, at time.Time) (Secret, error) {
	var sec Secret
	err := s.write(ctx, func(tx *sql.Tx) error {
		var created int64
		err := tx.QueryRowContext(ctx, `SELECT org_id, name, ciphertext, created_at, created_by FROM secrets WHERE org_id = $1 AND name = $2`, orgID, name).
			Scan(&sec.OrgID, &sec.Name, &sec.Ciphertext, &created, &sec.CreatedBy)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		sec.CreatedAt = fromMicros(created)
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "secret.read", Target: name})
	})
	return sec, err
}

// DeleteSecret deletes a secret.
func (s *Store) DeleteSecret(ctx context.Context, orgID, name, actor string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE org_id = $1 AND name = $2`, orgID, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "secret.delete", Target: name})
	})
}

// ListAudit returns an organization's newest audit records, newest first.
func (s *Store) ListAudit(ctx context.Context, orgID string, limit int) ([]Audit, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, org_id, at, actor, action, target, detail FROM audit WHERE org_id = $1 ORDER BY id DESC LIMIT $2`, orgID, limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []Audit{}
	for rows.Next() {
		var a Audit
		var at int64
		if err := rows.Scan(&a.ID, &a.OrgID, &at, &a.Actor, &a.Action, &a.Target, &a.Detail); err != nil {
			return nil, classify(err)
		}
		a.At = fromMicros(at)
		out = append(out, a)
	}
	return out, classify(rows.Err())
}

// EventHead returns the newest event sequence number (0 when none).
func (s *Store) EventHead(ctx context.Context) (int64, error) {
	var head int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'event_seq'`).Scan(&head)
	return head, classify(err)
}

// EventsAfter returns up to limit of an app's events with seq > after, in
// order, and the cursor to resume from: the last event's seq when the page is
// full, else the head read in the same snapshot (so events of other apps are
// skipped, never the app's own). A cursor older than the pruned history is
// ErrCursorExpired; one past the head is ErrCursorAhead. The head is read in
// the same snapshot as the events, never from a replica's memory, so a
// cursor that any replica handed out from a committed head is never refused.
func (s *Store) EventsAfter(ctx context.Context, appID string, after int64, limit int) (events []Event, next int64, err error) {
	err = s.read(ctx, func(tx *sql.Tx) error {
		var head, pruned int64
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT value FROM counters WHERE name = 'event_seq'),
			(SELECT value FROM counters WHERE name = 'events_pruned_through')`).Scan(&head, &pruned); err != nil {
			return err
		}
		if after < pruned {
			return ErrCursorExpired
		}
		if after > head {
			// Answering "nothing yet" here would let the next events,
			// numbered at or below the cursor, pass unseen.
			return ErrCursorAhead
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, org_id, app_id, type, key_id, at FROM events WHERE app_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
			appID, after, head, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		events = []Event{}
		for rows.Next() {
			var e Event
			var at int64
			if err := rows.Scan(&e.Seq, &e.OrgID, &e.AppID, &e.Type, &e.KeyID, &at); err != nil {
				return err
			}
			e.At = fromMicros(at)
			events = append(events, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		next = head
		if len(events) == limit {
			next = events[len(events)-1].Seq
		}
		return nil
	})
	return events, next, err
}

// PruneEvents deletes events older than before and remembers the newest
// sequence number deleted, so that older cursors answer ErrCursorExpired.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var through sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM events WHERE at < $1`, micros(before)).Scan(&through); err != nil {
			return err
		}
		if !through.Valid {
			return nil
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE seq <= $1`, through.Int64)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, `UPDATE counters SET value = $1 WHERE name = 'events_pruned_through' AND value < $1`, through.Int64)
		return err
	})
	return n, err
}

// CountKeys counts every non-revoked key by state, for the keys-by-state
// gauge. It reads the whole keys table: call it on a schedule, not per
// scrape.
func (s *Store) CountKeys(ctx context.Context, now time.Time) (KeyCounts, error) {
	defer s.timed("count_keys")()
	var out KeyCounts
	err := s.db.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN orphaned_at IS NULL AND expires_at > $1 THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN orphaned_at IS NULL AND expires_at <= $1 THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN orphaned_at IS NOT NULL THEN 1 ELSE 0 END), 0)
		FROM api_keys WHERE revoked_at IS NULL`, micros(now)).Scan(&out.Unexpired, &out.Expired, &out.Orphaned)
	if err != nil {
		return KeyCounts{}, classify(err)
	}
	return out, nil
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, org.ID, org.Name, micros(org.CreatedAt)); err != nil {
			return err
		}
		if err := insertUser(ctx, tx, owner); err != nil {
			return err
		}
		if err := addAudit(ctx, tx, Audit{OrgID: org.ID, At: org.CreatedAt, Actor: "system", Action: "org.create", Target: org.ID, Detail: "bootstrap, owner " + owner.ID}); err != nil {
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
