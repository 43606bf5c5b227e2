package keyservice

import (
	"sync"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// usageResolution is how fresh last_used_at is kept: a verify within this
// long of the recorded time writes nothing.
const usageResolution = time.Minute

// usageTracker batches last-used times in memory so that a verify costs no
// database write; Service.FlushUsage writes them every UsageFlush.
type usageTracker struct {
	mu      sync.Mutex
	pending map[string]time.Time
}

func newUsageTracker() *usageTracker {
	return &usageTracker{pending: make(map[string]time.Time)}
}

// mark notes that k was used at now, unless the store's record (or one
// already pending) is within usageResolution.
func (u *usageTracker) mark(k store.Key, now time.Time) { u.markID(k.ID, k.LastUsedAt, now) }

// markID notes that the thing with this id (a key, a verifier token),
// whose stored last use is last, was used at now.
func (u *usageTracker) markID(id string, last *time.Time, now time.Time) {
	if last != nil && now.Sub(*last) < usageResolution {
		return
	}
	u.mu.Lock()
	if prev, ok := u.pending[id]; !ok || now.Sub(prev) >= usageResolution {
		u.pending[id] = now.UTC()
	}
	u.mu.Unlock()
}

// latest is the later of last and a pending time for id, for lists to
// show before the flush.
func (u *usageTracker) latest(id string, last *time.Time) *time.Time {
	u.mu.Lock()
	t, ok := u.pending[id]
	u.mu.Unlock()
	if ok && (last == nil || t.After(*last)) {
		return &t
	}
	return last
}

func (u *usageTracker) take() map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		return nil
	}
	out := u.pending
	u.pending = make(map[string]time.Time)
	return out
}

// restore puts back times whose write failed, keeping newer ones.
func (u *usageTracker) restore(m map[string]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, t := range m {
		if prev, ok := u.pending[id]; !ok || t.After(prev) {
			u.pending[id] = t
		}
	}
}

// overlay shows pending times in lists before they are flushed.
func (u *usageTracker) overlay(keys []store.Key) []store.Key {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		return keys
	}
	for i := range keys {
		if t, ok := u.pending[keys[i].ID]; ok && (keys[i].LastUsedAt == nil || t.After(*keys[i].LastUsedAt)) {
			t := t
			keys[i].LastUsedAt = &t
		}
	}
	return keys
}
