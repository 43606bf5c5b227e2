package keyservice

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/appkeys/appkeys/internal/store"
)

// DefaultFeedTail is how many of the feed's newest events a replica keeps
// in memory (it holds up to twice as many between trims).
const DefaultFeedTail = 4096

// feedTail is the feed's newest events, every app's, read from the store
// once per replica (by Service.followFeed) and shared by every long-poll:
// a revocation costs one store read however many sidecars wait, and wakes
// only the long-polls of its own app.
//
// It holds every event with start < seq <= head, so a cursor in that range
// is answered from memory exactly as the store would answer it: the same
// events in the same order and the same next. A cursor outside it (older
// than the tail, or ahead of it, as a cursor handed out by a replica that
// heard of newer events first is) is the store's to answer.
type feedTail struct {
	mu       sync.Mutex
	capacity int
	ready    bool // false until the first read of the head
	start    int64
	head     int64
	pruned   int64   // cursors below it are expired, as in the store
	events   []Event // in sequence order
	// waiting holds, per app, the channel its waiting long-polls sleep
	// on; an event of the app closes it and removes it.
	waiting map[string]*appWait
	poked   chan struct{}
	// announced is the newest head this replica's own commits announced
	// (a read after the poke that followed will hold it), so that their
	// NOTIFY, heard a moment later, costs no second read.
	announced atomic.Int64
}

type appWait struct {
	ch chan struct{}
	n  int // long-polls holding ch
}

func newFeedTail(capacity int) *feedTail {
	if capacity <= 0 {
		capacity = DefaultFeedTail
	}
	return &feedTail{capacity: capacity, waiting: map[string]*appWait{}, poked: make(chan struct{}, 1)}
}

// poke asks the follower to read the store now: after a commit of this
// replica's (the store's OnFeedChange says so for every write of events,
// so callers need not), or a notification of another replica's.
func (t *feedTail) poke() {
	select {
	case t.poked <- struct{}{}:
	default:
	}
}

// read answers app's cursor after from memory: up to limit of its events
// after the cursor and the next cursor, as store.EventsAfter would. ok is
// false when the cursor is outside the tail. Unless it returns events or
// an error, it also registers a wait for app's next event: the caller
// sleeps on w.ch and then calls release(app, w). Registering under the
// same lock as the read is what keeps an event that lands between the two
// from going unseen.
func (t *feedTail) read(app string, after int64, limit int) (events []Event, next int64, ok bool, w *appWait, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready && after >= t.start && after <= t.head {
		if after < t.pruned {
			return nil, 0, true, nil, store.ErrCursorExpired
		}
		i, _ := slices.BinarySearchFunc(t.events, after+1, func(e Event, seq int64) int { return cmp.Compare(e.Seq, seq) })
		next = t.head
		for _, e := range t.events[i:] {
			if e.AppID != app {
				continue
			}
			if events = append(events, e); len(events) == limit {
				next = e.Seq
				break
			}
		}
		ok = true
		if len(events) > 0 {
			return events, next, true, nil, nil
		}
	}
	w = t.waiting[app]
	if w == nil {
		w = &appWait{ch: make(chan struct{})}
		t.waiting[app] = w
	}
	w.n++
	return nil, next, ok, w, nil
}

// release ends a wait that read registered.
func (t *feedTail) release(app string, w *appWait) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w.n--; w.n == 0 && t.waiting[app] == w {
		delete(t.waiting, app)
	}
}

// position is where the follower reads from next.
func (t *feedTail) position() (head int64, ready bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.head, t.ready
}

// apply adds a page the store answered for the cursor at the tail's head,
// and wakes the long-polls of every app it holds an event of.
func (t *feedTail) apply(p store.FeedPage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, eventsOf(p.Events)...)
	t.head = max(t.head, p.Next)
	t.pruned = max(t.pruned, p.PrunedThrough)
	if n := len(t.events); n > 2*t.capacity {
		// Trimmed only at twice the capacity, so that a write costs
		// no copy of the tail but one in capacity writes.
		drop := n - t.capacity
		t.start = t.events[drop-1].Seq
		t.events = slices.Clone(t.events[drop:])
	}
	for _, e := range p.Events {
		if w := t.waiting[e.AppID]; w != nil {
			close(w.ch)
			delete(t.waiting, e.AppID)
		}
	}
}

// reset empties the tail at the store's head: at start, and when the
// database went back in time (a restore, a failover that lost commits),
// when the events held may be ones the database no longer has. Every
// waiting long-poll wakes to look again: cursors past the new head must
// hear 410 from the store.
func (t *feedTail) reset(head, pruned int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready, t.start, t.head, t.pruned, t.events = true, head, head, pruned, nil
	for app, w := range t.waiting {
		close(w.ch)
		delete(t.waiting, app)
	}
}

// prunedThrough records a prune this replica committed, at once: the next
// long-poll with an older cursor must hear 410 as the store would say.
func (t *feedTail) prunedThrough(seq int64) {
	t.mu.Lock()
	t.pruned = max(t.pruned, seq)
	t.mu.Unlock()
}
