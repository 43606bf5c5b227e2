package keyservice

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// tailPage is how many events the follower reads at a time.
const tailPage = 1000

// followFeed keeps the tail of the feed up to date until ctx ends: at
// once when poked (this replica's own commits, through the store's
// OnFeedChange; other replicas', through ListenFeed on PostgreSQL), and
// every feedPoll as a safety net for a notification lost with its
// connection.
func (s *Service) followFeed(ctx context.Context) {
	go s.store.ListenFeed(ctx, s.heardNotification, func(err error) {
		s.feedCounters.listenReconnects.Add(1)
		s.log.Warn("the feed's LISTEN connection was lost; connecting again (long-polls wake on the head poll meanwhile)", "err", err)
	})
	tick := time.NewTicker(s.feedPoll)
	defer tick.Stop()
	s.refreshTail(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.refreshTail(ctx)
		case <-s.feed.poked:
			s.refreshTail(ctx)
		}
	}
}

// refreshTail reads what the store has after the tail's head, a page at a
// time, into the tail. A failure leaves the tail as it was: waiting
// long-polls time out, and the next poke or tick reads again.
func (s *Service) refreshTail(ctx context.Context) {
	for {
		after, ready := s.feed.position()
		s.feedCounters.followReads.Add(1)
		if !ready {
			head, pruned, err := s.store.FeedMarks(ctx)
			if err != nil {
				return // readiness reports the store
			}
			s.feed.reset(head, pruned)
			return
		}
		page, err := s.store.FeedAfter(ctx, after, tailPage)
		if err != nil {
			return
		}
		if page.Head < after {
			s.log.Warn("the feed's head went back: the database was restored or failed over and lost commits; cursors past the head will hear 410", "was", after, "now", page.Head)
			s.feed.reset(page.Head, page.PrunedThrough)
			return
		}
		s.feed.apply(page)
		if page.Next >= page.Head {
			return
		}
	}
}

// heardNotification is a replica's word, by NOTIFY, of a commit with the
// given head (0: a prune, or a connection just made). This replica hears
// its own commits too, which OnFeedChange has told it of already: reading
// again for a head the tail holds would be a second read per write.
func (s *Service) heardNotification(head int64) {
	at, ready := s.feed.position()
	if head == 0 || !ready || head > max(at, s.feed.announced.Load()) {
		s.feed.poke()
	}
}

// heardFeedChange is the store's word of this replica's own commit.
func (s *Service) heardFeedChange(c store.FeedChange) {
	if c.PrunedThrough > 0 {
		s.feed.prunedThrough(c.PrunedThrough)
	}
	// Before the poke: a read that follows the poke holds this head.
	raiseTo(&s.feed.announced, c.Head)
	s.feed.poke()
}

// raiseTo sets a to v unless it holds more already.
func raiseTo(a *atomic.Int64, v int64) {
	for at := a.Load(); v > at; at = a.Load() {
		if a.CompareAndSwap(at, v) {
			return
		}
	}
}
