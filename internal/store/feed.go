package store

import (
	"context"
	"database/sql"
	"strconv"
	"sync"
)

// FeedChannel is the PostgreSQL notification channel on which every
// transaction that changes the feed (writes events, prunes them) notifies
// at its commit, with the new head as its payload (a prune's is empty).
const FeedChannel = "appkeys_feed"

// FeedChange tells of a committed change to the feed: a transaction that
// wrote events up to Head, or a prune that deleted every event up to
// PrunedThrough. Only one of the two is set.
type FeedChange struct {
	Head, PrunedThrough int64
}

// feedHeads holds, for each open write transaction that wrote events, the
// newest sequence number it took; write reads it at commit. It is keyed by
// the transaction so that addEvent keeps its signature, and every write
// deletes its entry whether it commits or not.
var feedHeads sync.Map // *sql.Tx -> int64

// OnFeedChange sets a function called after every commit of this store
// that changes the feed, on the committing goroutine: how a replica hears
// of its own writes and prunes at once. Other replicas hear through
// ListenFeed. Call it before the store is used.
func (s *Store) OnFeedChange(fn func(FeedChange)) { s.onFeed = fn }

// notifyFeed, inside a transaction about to commit, sends the feed's
// notification (PostgreSQL delivers it at the commit, never before, and
// never if the transaction rolls back).
func (s *Store) notifyFeed(ctx context.Context, tx *sql.Tx, payload string) error {
	if s.dialect != "postgres" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, FeedChannel, payload)
	return err
}

// feedHeadOf takes what tx recorded as the newest event it wrote.
func feedHeadOf(tx *sql.Tx) (int64, bool) {
	v, ok := feedHeads.LoadAndDelete(tx)
	if !ok {
		return 0, false
	}
	return v.(int64), true
}

func (s *Store) feedChanged(c FeedChange) {
	if s.onFeed != nil {
		s.onFeed(c)
	}
}

// FeedPage is a page of every app's events, for a replica that keeps the
// feed's newest events in memory.
type FeedPage struct {
	// Events are in sequence order, none after Head.
	Events []Event
	// Next is where the following page starts: the last event's seq when
	// the page is full, else Head.
	Next int64
	// Head and PrunedThrough were read in the same snapshot as Events.
	Head, PrunedThrough int64
}

// FeedAfter returns up to limit events of every app with seq > after, in
// order. The head is read in the same snapshot as the events, and event
// numbers are taken under the counter row's lock held to the commit (see
// the package comment), so every event up to Next is in this page or an
// earlier one: a reader that moves its position to Next never skips an
// event committed late. A cursor past the head is not an error here: the
// page says so (Head < after), and the caller decides.
func (s *Store) FeedAfter(ctx context.Context, after int64, limit int) (FeedPage, error) {
	var p FeedPage
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT value FROM counters WHERE name = 'event_seq'),
			(SELECT value FROM counters WHERE name = 'events_pruned_through')`).Scan(&p.Head, &p.PrunedThrough); err != nil {
			return err
		}
		var err error
		p.Events, err = queryAll(ctx, tx, scanEvent, `SELECT `+eventColumns+` FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
			after, p.Head, limit)
		if err != nil {
			return err
		}
		p.Next = max(after, p.Head)
		if len(p.Events) == limit && limit > 0 {
			p.Next = p.Events[len(p.Events)-1].Seq
		}
		return nil
	})
	return p, err
}

// FeedMarks returns the feed's head and the newest sequence number pruned,
// read together.
func (s *Store) FeedMarks(ctx context.Context) (head, prunedThrough int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT
		(SELECT value FROM counters WHERE name = 'event_seq'),
		(SELECT value FROM counters WHERE name = 'events_pruned_through')`).Scan(&head, &prunedThrough)
	return head, prunedThrough, classify(err)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
