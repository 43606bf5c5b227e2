package keyservice

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// feedWorld is a running service (its feed followed by Run) on SQLite, or
// on PostgreSQL under APPKEYS_TEST_STORE=postgres, with apps to write in.
type feedWorld struct {
	svc   *Service
	st    *store.Store
	dsn   string
	owner Caller
	apps  []AppCreated
	subs  []Caller // each app's verifier
}

func newFeedWorld(t *testing.T, cfg Config, apps int) *feedWorld {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "feed.db")
	if os.Getenv("APPKEYS_TEST_STORE") == "postgres" {
		dsn = pgtest.NewDatabase(t)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if cfg.FeedPoll == 0 {
		cfg.FeedPoll = time.Hour // only the commits' own word wakes the feed
	}
	svc, ownerToken := bootstrapped(t, st, cfg)
	w := &feedWorld{svc: svc, st: st, dsn: dsn}
	if w.owner, err = svc.Authenticate(ctx, ownerToken); err != nil {
		t.Fatal(err)
	}
	for i := range apps {
		a, err := svc.CreateApp(ctx, w.owner, fmt.Sprint("app", i), KindCloudFunction)
		if err != nil {
			t.Fatal(err)
		}
		v, err := svc.Authenticate(ctx, a.VerifierToken)
		if err != nil {
			t.Fatal(err)
		}
		w.apps, w.subs = append(w.apps, a), append(w.subs, v)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { svc.Run(runCtx); close(ran) }()
	t.Cleanup(func() { stop(); <-ran })
	w.waitTail(t)
	return w
}

// waitTail waits until the tail holds the store's head.
func (w *feedWorld) waitTail(t *testing.T) {
	t.Helper()
	want, err := w.st.EventHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if head, ready := w.svc.feed.position(); ready && head >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tail did not reach the head %d within 10s", want)
		}
		time.Sleep(time.Millisecond)
	}
}

// revoke creates and revokes a key of app i and returns the key's id.
func (w *feedWorld) revoke(t *testing.T, i int) string {
	t.Helper()
	ctx := context.Background()
	k, err := w.svc.CreateKey(ctx, w.owner, w.apps[i].App.ID, CreateKeyRequest{Name: fmt.Sprint("k", time.Now().UnixNano()), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.RevokeKey(ctx, w.owner, k.Key.ID); err != nil {
		t.Fatal(err)
	}
	return k.Key.ID
}

type pollResult struct {
	events []Event
	next   int64
	err    error
}

// longPoll starts a long-poll of app i's feed after the cursor.
func (w *feedWorld) longPoll(i int, after int64, wait time.Duration) <-chan pollResult {
	done := make(chan pollResult, 1)
	go func() {
		evs, next, err := w.svc.Events(context.Background(), w.subs[i], &after, wait)
		done <- pollResult{evs, next, err}
	}()
	return done
}

// waitingOn waits until n long-polls wait on the service.
func (w *feedWorld) waitingOn(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); w.svc.feedCounters.waiting.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d long-polls waiting, want %d", w.svc.feedCounters.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFeedTailKeepsAppsApart: another app's events neither wake a waiting
// long-poll nor show in its answer, and its own event answers it at once,
// from the tail, with no store read of its own.
func TestFeedTailKeepsAppsApart(t *testing.T) {
	w := newFeedWorld(t, Config{}, 2)
	head, _ := w.svc.feed.position()
	polls := []<-chan pollResult{w.longPoll(0, head, 30*time.Second), w.longPoll(0, head, 30*time.Second)}
	w.waitingOn(t, 2)
	reads := w.svc.FeedStats().StoreReads[FeedReadSubscriber]
	var theirs []string
	for range 5 {
		theirs = append(theirs, w.revoke(t, 1))
	}
	w.waitTail(t)
	if n := w.svc.FeedStats().Wakeups; n != 0 {
		t.Fatalf("app B's 5 revocations woke app A's long-polls %d times", n)
	}
	for _, p := range polls {
		select {
		case r := <-p:
			t.Fatalf("app A's long-poll answered on app B's events: %+v", r)
		default:
		}
	}
	mine := w.revoke(t, 0)
	for _, p := range polls {
		r := <-p
		if r.err != nil || len(r.events) != 1 || r.events[0].KeyID != mine || r.events[0].AppID != w.apps[0].App.ID {
			t.Fatalf("app A's long-poll: %+v; want its one revocation %s", r, mine)
		}
		want, next, err := w.st.EventsAfter(context.Background(), w.apps[0].App.ID, head, eventsPageSize)
		if err != nil || r.next != next || !reflect.DeepEqual(r.events, eventsOf(want)) {
			t.Fatalf("from the tail %+v next %d; the store says %+v next %d (%v)", r.events, r.next, want, next, err)
		}
	}
	if d := w.svc.FeedStats().StoreReads[FeedReadSubscriber] - reads; d != 0 {
		t.Fatalf("the long-polls read the store %d times; the tail should answer them", d)
	}
	// App B's feed from the same cursor: its five, none of A's.
	r := <-w.longPoll(1, head, time.Second)
	if r.err != nil || len(r.events) != len(theirs) {
		t.Fatalf("app B: %+v", r)
	}
	for i, e := range r.events {
		if e.KeyID != theirs[i] || e.AppID != w.apps[1].App.ID {
			t.Fatalf("app B's event %d: %+v", i, e)
		}
	}
}

// TestFeedTailCursorOlderThanTail: with a tail of 4 events (trimmed at 8),
// every cursor from 0 to the head gets from a long-poll exactly what the
// store answers: the store's own answer below the tail, the tail's above.
func TestFeedTailCursorOlderThanTail(t *testing.T) {
	w := newFeedWorld(t, Config{FeedTail: 4}, 3)
	start, _ := w.svc.feed.position()
	for i := range 30 {
		w.revoke(t, i%3)
	}
	w.waitTail(t)
	ctx := context.Background()
	head, _ := w.st.EventHead(ctx)
	w.svc.feed.mu.Lock()
	tailStart := w.svc.feed.start
	w.svc.feed.mu.Unlock()
	if tailStart <= start {
		t.Fatalf("the tail holds everything since %d (starts at %d): nothing tested below it", start, tailStart)
	}
	for after := start; after < head; after++ {
		for app := range w.apps {
			want, wantNext, err := w.st.EventsAfter(ctx, w.apps[app].App.ID, after, eventsPageSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				continue // a long-poll would wait: the head's case below
			}
			reads := w.svc.FeedStats().StoreReads[FeedReadSubscriber]
			r := <-w.longPoll(app, after, 10*time.Second)
			if r.err != nil || r.next != wantNext || !reflect.DeepEqual(r.events, eventsOf(want)) {
				t.Fatalf("app %d after %d: %+v next %d, %v; the store says %+v next %d", app, after, r.events, r.next, r.err, want, wantNext)
			}
			fromStore := w.svc.FeedStats().StoreReads[FeedReadSubscriber] - reads
			if older := after < tailStart; (fromStore == 1) != older {
				t.Fatalf("cursor %d (tail from %d): %d store reads", after, tailStart, fromStore)
			}
		}
	}
}

// TestFeedTailCursorAhead: a cursor past the head is 410 at once, wait or
// not, as before the tail; and when the database itself goes back in time
// under a running replica, the tail starts over at the new head, cursors
// past it hear 410, and the feed goes on from there.
func TestFeedTailCursorAhead(t *testing.T) {
	w := newFeedWorld(t, Config{}, 1)
	w.revoke(t, 0)
	w.waitTail(t)
	head, _ := w.svc.feed.position()
	for _, wait := range []time.Duration{0, 30 * time.Second} {
		r := <-w.longPoll(0, head+1, wait)
		if KindOf(r.err) != KindCursorExpired {
			t.Fatalf("cursor past the head, wait %v: %+v; want cursor expired", wait, r)
		}
	}

	// The database goes back to before the last revocation.
	back := head - 1
	raw := w.rawDB(t)
	for _, q := range []string{`DELETE FROM events WHERE seq > $1`, `UPDATE counters SET value = $1 WHERE name = 'event_seq'`} {
		if _, err := raw.Exec(q, back); err != nil {
			t.Fatal(err)
		}
	}
	waiting := w.longPoll(0, head, 30*time.Second) // its cursor is now past the head
	w.svc.feed.poke()
	if r := <-waiting; KindOf(r.err) != KindCursorExpired {
		t.Fatalf("a long-poll whose cursor the database went back behind: %+v; want cursor expired", r)
	}
	if h, _ := w.svc.feed.position(); h != back {
		t.Fatalf("the tail's head is %d after the database went back to %d", h, back)
	}
	p := w.longPoll(0, back, 30*time.Second)
	id := w.revoke(t, 0)
	if r := <-p; r.err != nil || len(r.events) != 1 || r.events[0].KeyID != id || r.events[0].Seq != back+1 {
		t.Fatalf("after going back: %+v", r)
	}
}

// rawDB opens the world's database beside the store, to change it behind
// the service's back.
func (w *feedWorld) rawDB(t *testing.T) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", w.dsn
	if w.st.Dialect() == "sqlite" {
		driver, dsn = "sqlite", "file:"+w.dsn+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
