package keyservice

import (
	"context"
	"maps"
	"sync"
	"time"
)

// DefaultKeyCountEvery is how often the keys are counted by state.
const DefaultKeyCountEvery = 30 * time.Second

// keyCounts holds the last count of keys by state. Counting reads the whole
// keys table, so Run does it on a schedule and a metrics scrape reads what
// it found: a scrape costs the same with a million keys as with none, and
// scraping faster cannot load the database.
type keyCounts struct {
	mu     sync.Mutex
	counts map[string]int
	// expiring is the active keys due within ExpiringSoonWithin, counted
	// in the same read.
	expiring int
}

// refreshKeyCounts counts the keys by state now. A failure keeps the last
// count: readiness reports the store.
func (s *Service) refreshKeyCounts(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := s.now()
	m, err := s.store.CountKeys(ctx, now, now.Add(ExpiringSoonWithin))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("count keys by state", "err", err)
		}
		return
	}
	counts := map[string]int{StateActive: m.Unexpired, StateExpired: m.Expired, StateOrphaned: m.Orphaned}
	s.keyCounts.mu.Lock()
	s.keyCounts.counts, s.keyCounts.expiring = counts, m.Expiring
	s.keyCounts.mu.Unlock()
}

// KeyCounts returns every non-revoked key's count by state as Run last
// counted them (at its start, then every KeyCountEvery), and false before
// the first count.
func (s *Service) KeyCounts() (map[string]int, bool) {
	s.keyCounts.mu.Lock()
	defer s.keyCounts.mu.Unlock()
	return maps.Clone(s.keyCounts.counts), s.keyCounts.counts != nil
}
