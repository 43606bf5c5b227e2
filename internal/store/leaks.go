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
// at at, and answers the ids of the keys it changed, in id order. With
// revoke, each key not yet revoked is revoked with the reason
// RevokeLeaked, and its key.revoked event and key.revoke audit record are
// written; without, the key stays as it is, marked leaked (its first
// report's time kept), and a key.leaked audit record is written. A key
// revoked already is left alone: of two concurrent reports of one key
// exactly one revokes it. The work is a few statements for the whole
// batch, not a few per key: on PostgreSQL each is a round trip, and a
// report may name hundreds of keys. Callers keep a batch to a few hundred
// keys (TouchKeys's reasons).
func (s *Store) MarkLeaked(ctx context.Context, leaks []Leak, actor string, revoke bool, at time.Time) ([]string, error) {
	if len(leaks) == 0 {
		return nil, nil
	}
	detail := make(map[string]string, len(leaks))
	marks, args := make([]string, 0, len(leaks)), []any{micros(at)}
	if revoke {
		args = append(args, actor)
	}
	for _, l := range leaks {
		if _, dup := detail[l.KeyID]; dup {
			continue
		}
		detail[l.KeyID] = l.Detail
		args = append(args, l.KeyID)
		marks = append(marks, fmt.Sprintf("$%d", len(args)))
	}
	set := `leaked_at = coalesce(leaked_at, $1)`
	if revoke {
		set = `revoked_at = $1, revoked_by = $2, revoke_reason = 'leaked', ` + set
	}
	var changed []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		keys, err := queryAll(ctx, tx, func(row rowScanner) (Key, error) {
			var k Key
			err := row.Scan(&k.ID, &k.OrgID, &k.AppID)
			return k, err
		}, `UPDATE api_keys SET `+set+` WHERE id IN (`+strings.Join(marks, ", ")+`) AND revoked_at IS NULL RETURNING id, org_id, app_id`, args...)
		if err != nil {
			return err
		}
		slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
		changed = changed[:0]
		evs, recs := make([]Event, 0, len(keys)), make([]Audit, 0, len(keys))
		action := AuditKeyLeaked
		if revoke {
			action = "key.revoke"
		}
		for _, k := range keys {
			changed = append(changed, k.ID)
			evs = append(evs, Event{OrgID: k.OrgID, AppID: k.AppID, Type: EventKeyRevoked, KeyID: k.ID, At: at})
			recs = append(recs, Audit{OrgID: k.OrgID, At: at, Actor: actor, Action: action, Target: k.ID, Detail: detail[k.ID]})
		}
		if revoke {
			if err := addEvents(ctx, tx, evs); err != nil {
				return err
			}
		}
		return addAudits(ctx, tx, recs)
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}
