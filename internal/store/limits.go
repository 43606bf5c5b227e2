package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"
)

// String describes l for an audit record: "rate_limit 5/1s, allowed_cidrs
// 10.0.0.0/8 192.168.0.0/16", the parts that are set, or "" for none.
func (l Limits) String() string {
	var parts []string
	if l.RateLimit != nil {
		parts = append(parts, "rate_limit "+strconv.Itoa(l.RateLimit.Requests)+"/"+perName(l.RateLimit.Per))
	}
	if len(l.AllowedCIDRs) > 0 {
		parts = append(parts, "allowed_cidrs "+strings.Join(l.AllowedCIDRs, " "))
	}
	return strings.Join(parts, ", ")
}

// UpdateKeyLimits sets the limits of a live key of an organization to
// change(its current limits); change runs inside the transaction, with the
// key's row locked on PostgreSQL, so two concurrent updates of different
// limits both land. It returns change's error, if any, unchanged.
// writing a key.updated event (sidecars drop the key's cached answer and
// ask again) and a key.update audit record. A key revoked, or of another
// organization, or none, is ErrNotFound; an orphaned key ErrOrphaned; an
// expired one ErrKeyExpired (neither can authenticate, so a limit on them
// means nothing).
func (s *Store) UpdateKeyLimits(ctx context.Context, orgID, id, actor string, change func(Limits) (Limits, error), at time.Time) (Key, error) {
	var k Key
	var l Limits
	lock := "" // SQLite's single writer serializes the read and the write
	if s.dialect == "postgres" {
		lock = " FOR UPDATE OF k"
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = one(scanKey(tx.QueryRowContext(ctx, `SELECT `+keyCols+keyFrom+` WHERE k.id = $1 AND k.org_id = $2 AND k.revoked_at IS NULL`+lock, id, orgID)))
		if err != nil {
			return err
		}
		switch {
		case k.OrphanedAt != nil:
			return ErrOrphaned
		case !k.ExpiresAt.After(at):
			return ErrKeyExpired
		}
		if l, err = change(k.Limits); err != nil {
			return err
		}
		rate, per, cidrs := limitArgs(l)
		// A revoke or orphaning committed since the read leaves the row
		// matching nothing: the key is gone as far as this update goes.
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE api_keys SET rate_requests = $1, rate_per_seconds = $2, allowed_cidrs = $3
			WHERE id = $4 AND revoked_at IS NULL AND orphaned_at IS NULL`, rate, per, cidrs, id); err != nil {
			return err
		}
		if err := addEvent(ctx, tx, Event{OrgID: orgID, AppID: k.AppID, Type: EventKeyUpdated, KeyID: id, At: at}); err != nil {
			return err
		}
		detail := l.String()
		if detail == "" {
			detail = "no limits"
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: "key.update", Target: id, Detail: "was " + orDefault(k.Limits.String(), "no limits") + ", now " + detail})
	})
	if err != nil {
		return Key{}, err
	}
	k.Limits = l
	return k, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// perName spells a rate limit's period as the API does: 1s, 1m or 1h.
func perName(d time.Duration) string {
	switch d {
	case time.Second:
		return "1s"
	case time.Minute:
		return "1m"
	case time.Hour:
		return "1h"
	}
	return d.String()
}
