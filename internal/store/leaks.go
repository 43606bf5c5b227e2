package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// hashChunk is how many hashes one KeysByHashes query asks for: well under
// SQLite's and PostgreSQL's limits on bound parameters, and one round trip
// for the usual leak report.
const hashChunk = 500

// KeysByHashes finds the keys, revoked or not and of any organization,
// whose hash is one of hashes, in a few queries rather than one per hash:
// a leak report may name a thousand keys. Hashes that match nothing are
// simply absent from the answer.
func (s *Store) KeysByHashes(ctx context.Context, hashes []string) ([]Key, error) {
	defer s.timed("key_lookup")()
	out := []Key{}
	for chunk := range slices.Chunk(hashes, hashChunk) {
		marks := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, h := range chunk {
			marks[i] = fmt.Sprintf("$%d", i+1)
			args[i] = h
		}
		keys, err := queryAll(ctx, s.db, scanKey, `SELECT `+keyCols+keyFrom+` WHERE k.hash IN (`+strings.Join(marks, ", ")+`)`, args...)
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, keys...)
	}
	return out, nil
}

// Leak is a report that a key leaked, for MarkLeaked. Detail is the audit
// record's detail: where the key was found, never the key.
type Leak struct {
	KeyID  string
	Detail string
}

// Audit actions of leak reports.
const (
	// AuditKeyLeaked records a leak report that left the key working
	// (the service's notify action); a report that revoked the key is a
	// key.revoke record whose detail says so.
	AuditKeyLeaked = "key.leaked"
)

// MarkLeaked records, in one transaction, that the keys of leaks leaked
// at at, and answers the ids of the keys it changed. With revoke, each key
// not yet revoked is revoked with the reason RevokeLeaked, and its
// key.revoked event and key.revoke audit record are written; without, the
// key stays as it is, marked leaked (its first report's time kept), and a
// key.leaked audit record is written. A key revoked already is left alone:
// of two concurrent reports of one key exactly one revokes it. Keys are
// taken in id order, so that two reports locking overlapping keys cannot
// deadlock; callers keep a batch small (TouchKeys's reasons).
func (s *Store) MarkLeaked(ctx context.Context, leaks []Leak, actor string, revoke bool, at time.Time) ([]string, error) {
	sorted := slices.SortedFunc(slices.Values(leaks), func(a, b Leak) int { return strings.Compare(a.KeyID, b.KeyID) })
	var changed []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		changed = changed[:0]
		for _, l := range sorted {
			var orgID, appID string
			var row *sql.Row
			if revoke {
				row = tx.QueryRowContext(ctx, `UPDATE api_keys SET revoked_at = $1, revoked_by = $2, revoke_reason = 'leaked', leaked_at = coalesce(leaked_at, $1)
					WHERE id = $3 AND revoked_at IS NULL RETURNING org_id, app_id`, micros(at), actor, l.KeyID)
			} else {
				row = tx.QueryRowContext(ctx, `UPDATE api_keys SET leaked_at = coalesce(leaked_at, $1) WHERE id = $2 AND revoked_at IS NULL RETURNING org_id, app_id`,
					micros(at), l.KeyID)
			}
			err := row.Scan(&orgID, &appID)
			if err == sql.ErrNoRows {
				continue // revoked meanwhile, or never there
			}
			if err != nil {
				return err
			}
			changed = append(changed, l.KeyID)
			action := AuditKeyLeaked
			if revoke {
				action = "key.revoke"
				if err := addEvent(ctx, tx, Event{OrgID: orgID, AppID: appID, Type: EventKeyRevoked, KeyID: l.KeyID, At: at}); err != nil {
					return err
				}
			}
			if err := addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: action, Target: l.KeyID, Detail: l.Detail}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}
