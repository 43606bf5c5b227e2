package keyservice

import "sync/atomic"

// Feed store reads, by what made them (FeedStats.StoreReads).
const (
	// FeedReadSubscriber is one long-poll reading its own app's events.
	FeedReadSubscriber = "subscriber"
	// FeedReadHead is a new subscriber asking where the feed's head is.
	FeedReadHead = "head"
	// FeedReadFollow is the replica following the feed for every
	// subscriber at once (the head poll, the tail's read of new events).
	FeedReadFollow = "follow"
)

// feedCounters count the feed's work on this replica. They are what
// bench/fanout divides by the writes to tell whether a revocation costs one
// store read or one per subscriber.
type feedCounters struct {
	subscriberReads, headReads, followReads atomic.Uint64
	listenReconnects                        atomic.Uint64
	wakeups                                 atomic.Uint64
	waiting                                 atomic.Int64
}

// FeedStats is a reading of the feed's counters.
type FeedStats struct {
	// StoreReads counts the feed's store reads by FeedRead* kind.
	StoreReads map[string]uint64
	// ListenReconnects counts the times the PostgreSQL LISTEN connection
	// was lost and opened again.
	ListenReconnects uint64
	// Wakeups counts the long-polls woken to look at new events.
	Wakeups uint64
	// Waiting is the long-polls waiting now.
	Waiting int64
}

// FeedStats returns the feed's counters, for metrics.
func (s *Service) FeedStats() FeedStats {
	c := &s.feedCounters
	return FeedStats{
		StoreReads: map[string]uint64{
			FeedReadSubscriber: c.subscriberReads.Load(),
			FeedReadHead:       c.headReads.Load(),
			FeedReadFollow:     c.followReads.Load(),
		},
		ListenReconnects: c.listenReconnects.Load(),
		Wakeups:          c.wakeups.Load(),
		Waiting:          c.waiting.Load(),
	}
}
