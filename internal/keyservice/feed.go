package keyservice

import (
	"context"
	"sync"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// MaxEventsWait bounds a long-poll.
const MaxEventsWait = 60 * time.Second

const eventsPageSize = 500

// feedWatch broadcasts the feed head to long-polling readers: each advance
// closes the channel readers wait on. The head comes from the store (polled
// by Service.Run, and at once after a local write), so events written by
// another replica wake readers here too.
type feedWatch struct {
	mu    sync.Mutex
	head  int64
	ch    chan struct{}
	poked chan struct{}
}

func newFeedWatch() *feedWatch {
	return &feedWatch{ch: make(chan struct{}), poked: make(chan struct{}, 1)}
}

func (w *feedWatch) advance(head int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if head > w.head {
		w.head = head
		close(w.ch)
		w.ch = make(chan struct{})
	}
}

func (w *feedWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// poke asks Run to read the head now, after a local write.
func (w *feedWatch) poke() {
	select {
	case w.poked <- struct{}{}:
	default:
	}
}

// Event is an entry of an app's change feed.
type Event struct {
	Seq   int64
	AppID string
	Type  string // "key.revoked", "key.orphaned" or "app.deleted"
	KeyID string
	At    time.Time
}

func eventsOf(evs []store.Event) []Event {
	return each(evs, func(e store.Event) Event {
		return Event{Seq: e.Seq, AppID: e.AppID, Type: e.Type, KeyID: e.KeyID, At: e.At}
	})
}

// Events returns the calling app's events after the cursor. With after nil
// it answers at once with no events and the current head, where a new
// subscriber starts. Otherwise, when there are none yet, it waits up to
// wait for one. A cursor older than the kept history, or past the head
// (the store was restored or failed over behind the subscriber), is
// KindCursorExpired: the subscriber must purge and start again from the
// head.
func (s *Service) Events(ctx context.Context, c Caller, after *int64, wait time.Duration) ([]Event, int64, error) {
	if c.App == nil {
		return nil, 0, errorf(KindForbidden, "the events feed needs an app's verifier token")
	}
	if after == nil {
		s.feedCounters.headReads.Add(1)
		head, err := s.store.EventHead(ctx)
		return []Event{}, head, s.storeErr(err)
	}
	if *after < 0 {
		return nil, 0, errorf(KindBadRequest, "after must be a sequence number of 0 or more")
	}
	wait = min(max(wait, 0), MaxEventsWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Take the channel before reading, so an advance between the read
		// and the wait is not missed.
		changed := s.feed.changed()
		s.feedCounters.subscriberReads.Add(1)
		events, next, err := s.store.EventsAfter(ctx, c.App.ID, *after, eventsPageSize)
		if err != nil {
			return nil, 0, s.storeErr(err)
		}
		if len(events) > 0 || wait == 0 {
			return eventsOf(events), next, nil
		}
		s.feedCounters.waiting.Add(1)
		select {
		case <-changed:
			s.feedCounters.waiting.Add(-1)
		case <-deadline.C:
			s.feedCounters.waiting.Add(-1)
			return eventsOf(events), next, nil
		case <-ctx.Done():
			s.feedCounters.waiting.Add(-1)
			return eventsOf(events), next, nil
		}
	}
}
