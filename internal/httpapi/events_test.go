package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

func TestEventsFeed(t *testing.T) {
	w := newWorld(t)
	ka := w.createKey(w.owner, w.appA.ID, "a1")
	kb := w.createKey(w.owner, w.appB.ID, "b1")
	must(t, w.owner.RevokeKey(ctx(t), kb.ID)) // an event of app B only

	// Without after: no events, next is the head, at once.
	r := w.do("GET", "/v1/events", w.appA.VerifierToken, nil).WantStatus(http.StatusOK).JSON()
	evs, ok := r["events"].([]any)
	if !ok || len(evs) != 0 {
		t.Fatalf("events without after: %v", r)
	}
	head := int64(r["next"].(float64))
	if head < 1 {
		t.Fatalf("head %d after an event was written", head)
	}
	// wait is ignored without a cursor: still at once (a 60s wait would
	// outlast the test's deadline).
	if h, err := w.verA.EventsHead(ctx(t)); err != nil || h != head {
		t.Fatalf("head again: %d %v", h, err)
	}
	w.do("GET", "/v1/events?wait=60s", w.appA.VerifierToken, nil).WantStatus(http.StatusOK)

	// App A's feed from the start skips app B's revocation.
	page, err := w.verA.Events(ctx(t), 0, 0)
	must(t, err)
	if len(page.Events) != 0 || page.Next != head {
		t.Fatalf("app A's feed from 0: %+v (head %d)", page, head)
	}
	page, err = w.verB.Events(ctx(t), 0, 0)
	must(t, err)
	if len(page.Events) != 1 || page.Events[0].Type != client.EventKeyRevoked || page.Events[0].KeyID != kb.ID || page.Next != head {
		t.Fatalf("app B's feed from 0: %+v", page)
	}

	// A long-poll returns with the revocation that happens while it waits.
	type result struct {
		page *client.EventPage
		err  error
	}
	done := make(chan result, 1)
	go func() {
		p, err := w.verA.Events(ctx(t), head, 5*time.Second)
		done <- result{p, err}
	}()
	// Another app's event must not wake app A with an answer.
	kb2 := w.createKey(w.owner, w.appB.ID, "b2")
	must(t, w.owner.RevokeKey(ctx(t), kb2.ID))
	must(t, w.owner.RevokeKey(ctx(t), ka.ID))
	res := <-done
	must(t, res.err)
	if len(res.page.Events) != 1 {
		t.Fatalf("long-poll answered %+v", res.page)
	}
	e := res.page.Events[0]
	if e.Type != client.EventKeyRevoked || e.KeyID != ka.ID || e.AppID != w.appA.ID || e.Seq <= head || res.page.Next < e.Seq {
		t.Fatalf("long-poll event %+v next %d", e, res.page.Next)
	}
	next := res.page.Next

	// Orphaning and app deletion arrive as events too, in order.
	ko := w.createKey(w.member, w.appA.ID, "orphan-me")
	must(t, w.owner.DeleteApp(ctx(t), w.appA.ID))
	// The deleted app's sidecar still reads its feed, to the app.deleted.
	page, err = w.verA.Events(ctx(t), next, 5*time.Second)
	must(t, err)
	evts := page.Events
	if len(evts) != 2 || evts[0].Type != client.EventKeyOrphaned || evts[0].KeyID != ko.ID ||
		evts[1].Type != client.EventAppDeleted || evts[1].AppID != w.appA.ID || evts[1].KeyID != "" || evts[1].Seq <= evts[0].Seq {
		t.Fatalf("events after deleting app A: %+v", evts)
	}
	// The store agrees.
	stored, _, err := w.svc.Server.Store.EventsAfter(ctx(t), w.appA.ID, next, 100)
	must(t, err)
	if len(stored) != 2 || stored[1].Seq != evts[1].Seq {
		t.Fatalf("stored events: %+v", stored)
	}

	// App B's feed never saw any of app A's events.
	page, err = w.verB.Events(ctx(t), 0, 0)
	must(t, err)
	for _, e := range page.Events {
		if e.AppID != w.appB.ID || (e.KeyID != kb.ID && e.KeyID != kb2.ID) {
			t.Fatalf("app B's feed carries %+v", e)
		}
	}
	if len(page.Events) != 2 {
		t.Fatalf("app B's feed: %+v", page.Events)
	}

	// A long-poll with nothing to say ends empty at its deadline, with a
	// cursor to resume from.
	page, err = w.verB.Events(ctx(t), page.Next, 50*time.Millisecond)
	must(t, err)
	if len(page.Events) != 0 || page.Next < head {
		t.Fatalf("empty long-poll: %+v", page)
	}

	// Pruned history: an old cursor gets 410 cursor_expired, the head works.
	w.clock.Advance(time.Minute)
	n, err := w.svc.Server.Store.PruneEvents(ctx(t), w.clock.Now())
	must(t, err)
	if n == 0 {
		t.Fatal("pruned nothing")
	}
	w.do("GET", "/v1/events?after=0", w.appB.VerifierToken, nil).WantError(http.StatusGone, "cursor_expired")
	_, err = w.verB.Events(ctx(t), 1, time.Second)
	wantAPIError(t, err, http.StatusGone, client.CodeCursorExpired)
	h, err := w.verB.EventsHead(ctx(t))
	must(t, err)
	page, err = w.verB.Events(ctx(t), h, 0)
	must(t, err)
	if len(page.Events) != 0 || page.Next != h {
		t.Fatalf("from the head after pruning: %+v", page)
	}
	// And the feed goes on from there.
	kb3 := w.createKey(w.owner, w.appB.ID, "b3")
	must(t, w.owner.RevokeKey(ctx(t), kb3.ID))
	page, err = w.verB.Events(ctx(t), h, 5*time.Second)
	must(t, err)
	if len(page.Events) != 1 || page.Events[0].KeyID != kb3.ID || page.Events[0].Seq != h+1 {
		t.Fatalf("after pruning: %+v (head %d)", page, h)
	}
}

// TestEventsCursorFromTheFuture: a cursor past the head (the database was
// restored, or failed over and lost its last commits, while a sidecar kept
// its cursor) is 410 cursor_expired, at once even with a wait, so the
// sidecar starts again from the head instead of waiting past revocations
// numbered at or below its cursor. The head itself, and every cursor up to
// it, stay good.
func TestEventsCursorFromTheFuture(t *testing.T) {
	w := newWorld(t)
	k := w.createKey(w.owner, w.appA.ID, "a1")
	must(t, w.owner.RevokeKey(ctx(t), k.ID))
	head, err := w.verA.EventsHead(ctx(t))
	must(t, err)
	for _, after := range []int64{head + 1, head + 1_000_000} {
		path := fmt.Sprintf("/v1/events?after=%d&wait=10s", after)
		start := time.Now()
		w.do("GET", path, w.appA.VerifierToken, nil).WantError(http.StatusGone, "cursor_expired")
		if d := time.Since(start); d >= 10*time.Second {
			t.Fatalf("%s waited out its wait (%s) before answering", path, d)
		}
	}
	_, err = w.verA.Events(ctx(t), head+1, 0)
	wantAPIError(t, err, http.StatusGone, client.CodeCursorExpired)
	page, err := w.verA.Events(ctx(t), head, 0)
	must(t, err)
	if len(page.Events) != 0 || page.Next != head {
		t.Fatalf("from the head: %+v (head %d)", page, head)
	}
	page, err = w.verA.Events(ctx(t), head-1, 0)
	must(t, err)
	if len(page.Events) != 1 || page.Events[0].KeyID != k.ID {
		t.Fatalf("from just before the head: %+v", page)
	}
}
