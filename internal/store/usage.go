package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// UsageCount is how many requests a key had, by outcome: in one report,
// or summed over a window.
type UsageCount struct {
	KeyID       string
	Allowed     int64
	RateLimited int64
	Forbidden   int64
}

// Total is the sum of the outcomes.
func (c UsageCount) Total() int64 { return c.Allowed + c.RateLimited + c.Forbidden }

// UsagePoint is one hour's bucket of a key.
type UsagePoint struct {
	Hour        time.Time
	Allowed     int64
	RateLimited int64
	Forbidden   int64
}

// MaxUsageBatch bounds the entries RecordUsage takes at once: four
// parameters each stay well within SQLite's and PostgreSQL's limits.
const MaxUsageBatch = 1000

// RecordUsage adds counts to the buckets of hour (truncated to the hour)
// in one statement, in one transaction, taking only the entries whose key
// belongs to appID: any other id (another app's key, another
// organization's, one that does not exist) is left out without a word. It
// returns the ids it took. The entries are written in key id order, so
// that two replicas adding to overlapping keys lock their rows in the same
// order and cannot deadlock; ids must be distinct.
func (s *Store) RecordUsage(ctx context.Context, appID string, hour time.Time, counts []UsageCount) ([]string, error) {
	if len(counts) == 0 {
		return nil, nil
	}
	if len(counts) > MaxUsageBatch {
		return nil, fmt.Errorf("record usage: %d entries, at most %d", len(counts), MaxUsageBatch)
	}
	counts = slices.Clone(counts)
	slices.SortFunc(counts, func(a, b UsageCount) int { return strings.Compare(a.KeyID, b.KeyID) })
	hourAt := micros(hour.Truncate(time.Hour))
	// SQLite takes $N as a parameter's name and finds each by a search
	// through the names: over 4,000 of them that took nine tenths of a
	// report's time. Plain ? parameters have no name: on SQLite they are
	// used, in the order they appear (hour, the values, app).
	ph := func(n int) string { return "$" + strconv.Itoa(n) }
	args := make([]any, 0, 2+4*len(counts))
	args = append(args, appID, hourAt)
	if s.dialect == "sqlite" {
		ph = func(int) string { return "?" }
		args = args[:0]
		args = append(args, hourAt)
	}
	var values strings.Builder
	for i, c := range counts {
		if i > 0 {
			values.WriteString(", ")
		}
		n := len(args)
		// The casts give the VALUES columns their types on PostgreSQL;
		// SQLite takes them as they are.
		fmt.Fprintf(&values, "(CAST(%s AS TEXT), CAST(%s AS BIGINT), CAST(%s AS BIGINT), CAST(%s AS BIGINT))", ph(n+1), ph(n+2), ph(n+3), ph(n+4))
		args = append(args, c.KeyID, c.Allowed, c.RateLimited, c.Forbidden)
	}
	appPH, hourPH := ph(1), ph(2)
	if s.dialect == "sqlite" {
		args = append(args, appID)
	}
	// VALUES names its columns column1, column2, … on both databases.
	// SQLite needs the WHERE to tell the upsert's ON from the join's.
	q := `INSERT INTO key_usage (key_id, hour, org_id, app_id, allowed, rate_limited, forbidden)
SELECT k.id, ` + hourPH + `, k.org_id, k.app_id, v.column2, v.column3, v.column4
FROM (VALUES ` + values.String() + `) AS v JOIN api_keys k ON k.id = v.column1
WHERE k.app_id = ` + appPH + `
ON CONFLICT (key_id, hour) DO UPDATE SET allowed = key_usage.allowed + excluded.allowed,
	rate_limited = key_usage.rate_limited + excluded.rate_limited, forbidden = key_usage.forbidden + excluded.forbidden
RETURNING key_id`
	var taken []string
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			taken = append(taken, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(taken)
	return taken, nil
}

// KeyUsage returns the stored buckets of a key of an organization with
// from <= hour < to, oldest first; hours with no requests have none.
func (s *Store) KeyUsage(ctx context.Context, orgID, keyID string, from, to time.Time) ([]UsagePoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT hour, allowed, rate_limited, forbidden FROM key_usage
WHERE key_id = $1 AND org_id = $2 AND hour >= $3 AND hour < $4 ORDER BY hour`, keyID, orgID, micros(from), micros(to))
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []UsagePoint{}
	for rows.Next() {
		var p UsagePoint
		if err := rows.Scan(timeCol{&p.Hour}, &p.Allowed, &p.RateLimited, &p.Forbidden); err != nil {
			return nil, classify(err)
		}
		out = append(out, p)
	}
	return out, classify(rows.Err())
}

// UsageTotals sums, per key, the buckets with from <= hour < to of an
// organization's keys, or of one app's when appID is not empty. Keys with
// no requests in the window are not listed. Sorted by key id.
func (s *Store) UsageTotals(ctx context.Context, orgID, appID string, from, to time.Time) ([]UsageCount, error) {
	q := `SELECT key_id, SUM(allowed), SUM(rate_limited), SUM(forbidden) FROM key_usage WHERE org_id = $1 AND hour >= $2 AND hour < $3`
	args := []any{orgID, micros(from), micros(to)}
	if appID != "" {
		q += ` AND app_id = $4`
		args = append(args, appID)
	}
	rows, err := s.db.QueryContext(ctx, q+` GROUP BY key_id ORDER BY key_id`, args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := []UsageCount{}
	for rows.Next() {
		var c UsageCount
		if err := rows.Scan(&c.KeyID, &c.Allowed, &c.RateLimited, &c.Forbidden); err != nil {
			return nil, classify(err)
		}
		out = append(out, c)
	}
	return out, classify(rows.Err())
}

// PruneUsage deletes the buckets of hours that start before before.
func (s *Store) PruneUsage(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM key_usage WHERE hour < $1`, micros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
