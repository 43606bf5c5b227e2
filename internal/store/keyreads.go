package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

const keyCols = `k.id, k.org_id, k.app_id, a.name, k.name, k.prefix, k.hash, k.expires_at, k.created_at, k.created_by, u.email,
	k.revoked_at, k.orphaned_at, k.orphan_reason, k.last_used_at, k.rolled_from, k.rolled_to, k.leaked_at, k.revoke_reason,
	k.rate_requests, k.rate_per_seconds, k.allowed_cidrs`

const keyFrom = ` FROM api_keys k JOIN apps a ON a.id = k.app_id JOIN users u ON u.id = k.created_by`

func scanKey(row rowScanner) (Key, error) {
	var k Key
	var reason, from, to, revokeReason sql.NullString
	var lim limitCols
	err := row.Scan(&k.ID, &k.OrgID, &k.AppID, &k.AppName, &k.Name, &k.Prefix, &k.Hash, timeCol{&k.ExpiresAt}, timeCol{&k.CreatedAt}, &k.CreatedBy, &k.CreatorEmail,
		nullTimeCol{&k.RevokedAt}, nullTimeCol{&k.OrphanedAt}, &reason, nullTimeCol{&k.LastUsedAt}, &from, &to, nullTimeCol{&k.LeakedAt}, &revokeReason,
		&lim.requests, &lim.per, &lim.cidrs)
	k.OrphanReason, k.RolledFrom, k.RolledTo, k.RevokeReason = reason.String, from.String, to.String, revokeReason.String
	k.Limits = lim.limits()
	return k, err
}

const keyByHashSQL = `SELECT ` + keyCols + keyFrom + ` WHERE k.hash = $1`

// keyForVerifySQL reads api_keys alone: a verdict needs neither the app's
// name nor the creator's email, and the two joins cost two more index probes
// and row reads per verify.
const keyForVerifySQL = `SELECT id, org_id, app_id, name, expires_at, revoked_at, orphaned_at, orphan_reason, last_used_at,
	rate_requests, rate_per_seconds, allowed_cidrs FROM api_keys WHERE hash = $1`

func scanKeyForVerify(row rowScanner) (Key, error) {
	var k Key
	var reason sql.NullString
	var lim limitCols
	err := row.Scan(&k.ID, &k.OrgID, &k.AppID, &k.Name, timeCol{&k.ExpiresAt},
		nullTimeCol{&k.RevokedAt}, nullTimeCol{&k.OrphanedAt}, &reason, nullTimeCol{&k.LastUsedAt},
		&lim.requests, &lim.per, &lim.cidrs)
	k.OrphanReason = reason.String
	k.Limits = lim.limits()
	return k, err
}

// limitCols are the columns of a key's Limits as scanned.
type limitCols struct {
	requests, per sql.NullInt64
	cidrs         sql.NullString
}

func (c limitCols) limits() Limits {
	var l Limits
	if c.requests.Valid && c.per.Valid {
		l.RateLimit = &RateLimit{Requests: int(c.requests.Int64), Per: time.Duration(c.per.Int64) * time.Second}
	}
	if c.cidrs.String != "" {
		l.AllowedCIDRs = strings.Split(c.cidrs.String, ",")
	}
	return l
}

// limitArgs are the column values of l: rate_requests, rate_per_seconds,
// allowed_cidrs.
func limitArgs(l Limits) (requests, per, cidrs any) {
	if l.RateLimit != nil {
		requests, per = int64(l.RateLimit.Requests), int64(l.RateLimit.Per/time.Second)
	}
	if len(l.AllowedCIDRs) > 0 {
		cidrs = strings.Join(l.AllowedCIDRs, ",")
	}
	return requests, per, cidrs
}

// byHash looks a key up by each candidate hash in turn; the first found
// answers, and none found is ErrNotFound.
func byHash(hashes []string, lookup func(hash string) (Key, error)) (Key, error) {
	for _, h := range hashes {
		k, err := lookup(h)
		if !errors.Is(err, sql.ErrNoRows) {
			return one(k, err)
		}
	}
	return Key{}, ErrNotFound
}

// KeyForVerify finds a key, revoked or not, by one of its candidate hashes,
// with what a verify needs: Key's AppName, Prefix, Hash, CreatedAt,
// CreatedBy and CreatorEmail are left empty.
func (s *Store) KeyForVerify(ctx context.Context, hashes ...string) (Key, error) {
	defer s.timed("key_lookup")()
	return byHash(hashes, func(h string) (Key, error) { return scanKeyForVerify(s.keyForVerify.QueryRowContext(ctx, h)) })
}

// KeyByHash finds a key, revoked or not, by one of its candidate hashes.
func (s *Store) KeyByHash(ctx context.Context, hashes ...string) (Key, error) {
	defer s.timed("key_lookup")()
	return byHash(hashes, func(h string) (Key, error) { return scanKey(s.keyByHash.QueryRowContext(ctx, h)) })
}

// GetKey returns a key of an organization, revoked or not.
func (s *Store) GetKey(ctx context.Context, orgID, id string) (Key, error) {
	return one(scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1 AND k.org_id = $2`, id, orgID)))
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
	if !f.ExpiresBy.IsZero() {
		args = append(args, micros(f.ExpiresBy))
		// A key rolled away ends with its overlap; its successor stands.
		q += fmt.Sprintf(` AND k.expires_at <= $%d AND k.rolled_to IS NULL`, len(args))
	}
	switch {
	case f.Leaked == nil:
	case *f.Leaked:
		q += ` AND k.leaked_at IS NOT NULL`
	default:
		q += ` AND k.leaked_at IS NULL`
	}
	q += ` ORDER BY k.created_at DESC, k.id`
	keys, err := queryAll(ctx, s.db, scanKey, q, args...)
	return keys, classify(err)
}

// CountKeys counts every non-revoked key by state, for the keys-by-state
// gauge, and the unexpired ones that expire by expiringBy. It reads the
// whole keys table: call it on a schedule, not per scrape.
func (s *Store) CountKeys(ctx context.Context, now, expiringBy time.Time) (KeyCounts, error) {
	defer s.timed("count_keys")()
	var out KeyCounts
	err := s.db.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN orphaned_at IS NULL AND expires_at > $1 THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN orphaned_at IS NULL AND expires_at <= $1 THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN orphaned_at IS NOT NULL THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN orphaned_at IS NULL AND expires_at > $1 AND expires_at <= $2 AND rolled_to IS NULL THEN 1 ELSE 0 END), 0)
		FROM api_keys WHERE revoked_at IS NULL`, micros(now), micros(expiringBy)).Scan(&out.Unexpired, &out.Expired, &out.Orphaned, &out.Expiring)
	if err != nil {
		return KeyCounts{}, classify(err)
	}
	return out, nil
}
