package keyservice

import (
	"context"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// MaxEventsWait bounds a long-poll.
const MaxEventsWait = 60 * time.Second

const eventsPageSize = 500

// Event is an entry of an app's change feed.
type Event struct {
	Seq   int64
	AppID string
	Type  string // "key.revoked", "key.orphaned", "key.expiry_changed" or "app.deleted"
	KeyID string
	At    time.Time
	// ExpiresAt is a key.expiry_changed event's new, earlier expiry.
	ExpiresAt *time.Time
}

func eventsOf(evs []store.Event) []Event {
	return each(evs, func(e store.Event) Event {
		return Event{Seq: e.Seq, AppID: e.AppID, Type: e.Type, KeyID: e.KeyID, At: e.At, ExpiresAt: e.ExpiresAt}
	})
}

// Events returns the calling app's events after the cursor. With after nil
// it answers at once with no events and the current head, where a new
// subscriber starts. Otherwise, when there are none yet, it waits up to
// wait for one. A cursor older than the kept history, or past the head
// (the store was restored or failed over behind the subscriber), is
// KindCursorExpired: the subscriber must purge and start again from the
// head.
//
// A long-poll is answered from the replica's tail of the feed when its
// cursor is there, and from the store otherwise; an answer without a wait
// always comes from the store, so it sees every commit before it.
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
	if wait == 0 {
		events, next, err := s.storeEvents(ctx, c.App.ID, *after)
		return events, next, err
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	app, cursor := c.App.ID, *after
	for {
		events, next, inTail, w, err := s.feed.read(app, cursor, eventsPageSize)
		if err != nil || len(events) > 0 {
			return events, next, s.storeErr(err)
		}
		if !inTail {
			// Already waiting (w), so that the tail catching up with
			// what this read finds cannot pass unseen.
			events, next, err = s.storeEvents(ctx, app, cursor)
			if err != nil || len(events) > 0 {
				s.feed.release(app, w)
				return events, next, err
			}
			if head, ready := s.feed.position(); ready && next > head {
				s.feed.poke() // another replica handed out a newer cursor
			}
		}
		// No event of this app up to next: look after it from now on,
		// and answer with it if the wait runs out.
		cursor = next
		s.feedCounters.waiting.Add(1)
		select {
		case <-w.ch:
			s.feedCounters.wakeups.Add(1)
		case <-deadline.C:
			return s.lastLook(ctx, app, cursor, w)
		case <-ctx.Done():
			return s.lastLook(ctx, app, cursor, w)
		}
		s.feedCounters.waiting.Add(-1)
		s.feed.release(app, w)
	}
}

// lastLook answers a long-poll whose wait ran out: from the tail when the
// cursor is there (the head may have moved since it last looked), else
// with no events and the cursor.
func (s *Service) lastLook(ctx context.Context, app string, cursor int64, w *appWait) ([]Event, int64, error) {
	s.feedCounters.waiting.Add(-1)
	s.feed.release(app, w)
	events, next, inTail, w, err := s.feed.read(app, cursor, eventsPageSize)
	if w != nil {
		s.feed.release(app, w)
	}
	if err != nil || !inTail {
		// A prune that passed the cursor meanwhile is for its next
		// call to hear, as it was before the tail.
		return []Event{}, cursor, nil
	}
	if events == nil {
		events = []Event{}
	}
	return events, next, nil
}

// storeEvents reads app's events after the cursor from the store.
func (s *Service) storeEvents(ctx context.Context, app string, after int64) ([]Event, int64, error) {
	s.feedCounters.subscriberReads.Add(1)
	events, next, err := s.store.EventsAfter(ctx, app, after, eventsPageSize)
	if err != nil {
		return nil, 0, s.storeErr(err)
	}
	return eventsOf(events), next, nil
}
