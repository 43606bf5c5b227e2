package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// addEvent appends an event inside tx. The UPDATE … RETURNING takes the
// counter row's lock until commit, which orders event-writing transactions.
func addEvent(ctx context.Context, tx *sql.Tx, e Event) error {
	var seq int64
	if err := tx.QueryRowContext(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'event_seq' RETURNING value`).Scan(&seq); err != nil {
		return fmt.Errorf("take event sequence: %w", err)
	}
	feedHeads.Store(tx, seq)
	var expires sql.NullInt64
	if e.ExpiresAt != nil {
		expires = sql.NullInt64{Int64: micros(*e.ExpiresAt), Valid: true}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO events (seq, org_id, app_id, type, key_id, at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		seq, e.OrgID, e.AppID, e.Type, e.KeyID, micros(e.At), expires)
	if err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return nil
}

// addEvents appends events inside tx, in order, with one sequence update
// and one insert: a leak report revokes hundreds of keys at a time, and a
// round trip per event costs PostgreSQL most of a second.
func addEvents(ctx context.Context, tx *sql.Tx, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	var last int64
	if err := tx.QueryRowContext(ctx, `UPDATE counters SET value = value + $1 WHERE name = 'event_seq' RETURNING value`, len(evs)).Scan(&last); err != nil {
		return fmt.Errorf("take event sequences: %w", err)
	}
	first := last - int64(len(evs)) + 1
	rows, args := make([]string, len(evs)), make([]any, 0, 6*len(evs))
	for i, e := range evs {
		n := len(args)
		rows[i] = fmt.Sprintf("($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
		args = append(args, first+int64(i), e.OrgID, e.AppID, e.Type, e.KeyID, micros(e.At))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (seq, org_id, app_id, type, key_id, at) VALUES `+strings.Join(rows, ", "), args...); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	return nil
}

// EventHead returns the newest event sequence number (0 when none).
func (s *Store) EventHead(ctx context.Context) (int64, error) {
	var head int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'event_seq'`).Scan(&head)
	return head, classify(err)
}

// eventColumns are the columns scanEvent reads, in its order.
const eventColumns = `seq, org_id, app_id, type, key_id, at, expires_at`

func scanEvent(row rowScanner) (Event, error) {
	var e Event
	err := row.Scan(&e.Seq, &e.OrgID, &e.AppID, &e.Type, &e.KeyID, timeCol{&e.At}, nullTimeCol{&e.ExpiresAt})
	return e, err
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
		var err error
		events, err = queryAll(ctx, tx, scanEvent, `SELECT `+eventColumns+` FROM events WHERE app_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
			appID, after, head, limit)
		if err != nil {
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
	var n, pruned int64
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
		if _, err = tx.ExecContext(ctx, `UPDATE counters SET value = $1 WHERE name = 'events_pruned_through' AND value < $1`, through.Int64); err != nil {
			return err
		}
		pruned = through.Int64
		// Other replicas answer old cursors from memory: they must
		// hear that those are now expired.
		return s.notifyFeed(ctx, tx, "")
	})
	if err == nil && pruned > 0 {
		s.feedChanged(FeedChange{PrunedThrough: pruned})
	}
	return n, err
}
