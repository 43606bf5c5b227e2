package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/testclock"
)

// scriptedSource answers Events calls from a script, one answer per call,
// and records each call's cursor. With the script empty a call waits, like
// a long-poll with nothing new.
type scriptedSource struct {
	mu      sync.Mutex
	answers []sourceAnswer
	calls   []sourceCall
	more    chan struct{}
}

type sourceAnswer struct {
	page EventPage
	err  error
}

type sourceCall struct {
	cursor   int64
	fromHead bool
}

func newScriptedSource() *scriptedSource { return &scriptedSource{more: make(chan struct{}, 1)} }

func (s *scriptedSource) push(a ...sourceAnswer) {
	s.mu.Lock()
	s.answers = append(s.answers, a...)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func (s *scriptedSource) Events(ctx context.Context, cursor int64, fromHead bool, wait time.Duration) (EventPage, error) {
	s.mu.Lock()
	s.calls = append(s.calls, sourceCall{cursor, fromHead})
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if len(s.answers) > 0 {
			a := s.answers[0]
			s.answers = s.answers[1:]
			s.mu.Unlock()
			return a.page, a.err
		}
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-ctx.Done():
			return EventPage{}, ctx.Err()
		}
	}
}

func (s *scriptedSource) callList() []sourceCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sourceCall(nil), s.calls...)
}

func (s *scriptedSource) drained() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.answers) == 0
}

func page(next int64, evs ...Event) sourceAnswer {
	return sourceAnswer{page: EventPage{Events: evs, Next: next}}
}

func startFeed(t *testing.T, src EventSource, clk *testclock.Clock, obs Observer) *Feed {
	t.Helper()
	f, err := NewFeed(FeedConfig{App: testApp, Now: clk.Now, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond}, src, obs)
	if err != nil {
		t.Fatal(err)
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func TestFeedEvictsAndPurges(t *testing.T) {
	noGoroutineLeak(t)
	clk := newClock()
	svc := newFakeService()
	obs := &countObserver{}
	e := newTestEngine(t, Config{CacheTTL: time.Hour, Now: clk.Now}, svc, nil)
	ctx := context.Background()
	k1 := svc.addKey(t, testApp, "key_1", time.Time{})
	k2 := svc.addKey(t, testApp, "key_2", time.Time{})
	k3 := svc.addKey(t, testApp, "key_3", time.Time{})

	src := newScriptedSource()
	src.push(page(100)) // the head
	f := startFeed(t, src, clk, obs)
	defer e.Follow(f)()
	eventually(t, "feed up", func() bool { return f.Stats().Up })
	for _, k := range []string{k1, k2, k3} {
		e.Check(ctx, k)
	}
	at := clk.Now().Add(-300 * time.Millisecond)
	src.push(page(103,
		Event{Seq: 101, Type: EventKeyRevoked, KeyID: "key_1", AppID: testApp, At: at},
		Event{Seq: 102, Type: EventKeyOrphaned, KeyID: "key_2", AppID: testApp, At: at},
		Event{Seq: 103, Type: EventKeyRevoked, KeyID: "key_3", AppID: "app_other", At: at},
	))
	eventually(t, "events applied", func() bool { return f.Stats().LastSeq == 103 })
	if d, _ := e.Check(ctx, k1); d.Valid || d.Code != CodeRevoked {
		t.Fatalf("revoked key: %+v", d)
	}
	if d, _ := e.Check(ctx, k2); d.Valid || d.Code != CodeOrphaned {
		t.Fatalf("orphaned key: %+v", d)
	}
	if d, _ := e.Check(ctx, k3); d.Source != SourceCache {
		t.Fatal("another app's event evicted our key")
	}
	if got := obs.revocations.Load(); got != 2 {
		t.Fatalf("revocations applied %d; want 2", got)
	}
	if s := f.Stats(); s.Lag != 300*time.Millisecond || !s.LastEventAt.Equal(at) {
		t.Fatalf("stats %+v; want lag 300ms", s)
	}

	src.push(page(104, Event{Seq: 104, Type: EventAppDeleted, AppID: testApp, At: at}))
	eventually(t, "app.deleted applied", func() bool { return f.Stats().LastSeq == 104 })
	if s := e.Stats(); s.ValidEntries != 0 {
		t.Fatalf("after app.deleted: %+v", s)
	}
	calls := src.callList()
	want := []sourceCall{{0, true}, {100, false}, {103, false}, {104, false}}
	if len(calls) < len(want) {
		t.Fatalf("calls %v; want %v", calls, want)
	}
	for i, c := range want {
		if calls[i] != c {
			t.Fatalf("call %d: %+v; want %+v (all: %v)", i, calls[i], c, calls)
		}
	}
}

func TestFeedResumesAfterFailureAndRestartsOnExpiredCursor(t *testing.T) {
	noGoroutineLeak(t)
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Hour, Now: clk.Now}, svc, nil)
	ctx := context.Background()
	key := svc.addKey(t, testApp, "key_1", time.Time{})
	src := newScriptedSource()
	src.push(page(7), page(9, Event{Seq: 9, Type: "key.created", KeyID: "key_9"}))
	f := startFeed(t, src, clk, nil)
	defer e.Follow(f)()
	eventually(t, "seq 9", func() bool { return f.Stats().LastSeq == 9 })

	// Two failures: the feed is down, then resumes from seq 9.
	src.push(sourceAnswer{err: errDown}, sourceAnswer{err: &StatusError{Status: 503}})
	eventually(t, "failures consumed", src.drained)
	src.push(page(10, Event{Seq: 10, Type: EventKeyRevoked, KeyID: "key_x"}))
	eventually(t, "seq 10", func() bool { return f.Stats().LastSeq == 10 && f.Stats().Up })
	calls := src.callList()
	for _, c := range calls[2:5] {
		if c != (sourceCall{9, false}) {
			t.Fatalf("after failures: calls %v; want resumes from 9", calls)
		}
	}

	// The cursor expired: the cache is purged and the feed starts over at the head.
	e.Check(ctx, key)
	if e.Stats().ValidEntries != 1 {
		t.Fatal("setup")
	}
	src.push(sourceAnswer{err: fmt.Errorf("%w: gone", ErrCursorExpired)}, page(50))
	eventually(t, "restart from head", func() bool {
		c := src.callList()
		return len(c) >= 8 && c[6] == (sourceCall{0, true}) && c[7] == (sourceCall{50, false})
	})
	if s := e.Stats(); s.ValidEntries != 0 {
		t.Fatalf("cursor expired but cache kept %d entries", s.ValidEntries)
	}
}

// TestFeedBacksOffFromRepeated410: the first 410 restarts from the head at
// once (revocations must not wait), but a 410 again right after the restart,
// before any page was read (the database went back in time once more, or a
// key service that answers nothing else), waits like a failure: the
// subscriber never spins against the key service.
func TestFeedBacksOffFromRepeated410(t *testing.T) {
	noGoroutineLeak(t)
	src := newScriptedSource()
	gone := sourceAnswer{err: fmt.Errorf("%w: gone", ErrCursorExpired)}
	src.push(page(7)) // the head
	for i := range 50 {
		src.push(gone, page(int64(7+i))) // 410, then the head again
	}
	f, err := NewFeed(FeedConfig{App: testApp, BackoffMin: time.Hour, BackoffMax: time.Hour}, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Start()
	defer f.Close()
	// head, 410, head (at once), 410: then it must wait an hour.
	eventually(t, "two 410s", func() bool { return len(src.callList()) >= 4 })
	time.Sleep(100 * time.Millisecond) // time enough to spin through the script
	if calls := src.callList(); len(calls) != 4 {
		t.Fatalf("%d calls against a key service answering 410 after every head; want 4 and a backoff", len(calls))
	}
	if f.Stats().Up {
		t.Fatal("the feed says it is up while its cursor keeps expiring")
	}
}

// TestFeedOverHTTP runs the subscriber against an httptest key service that
// speaks the real wire format, including 410 cursor_expired.
func TestFeedOverHTTP(t *testing.T) {
	noGoroutineLeak(t)
	var (
		mu      sync.Mutex
		afters  []string
		release = make(chan struct{})
		events  = []Event{
			{Seq: 5, Type: EventKeyRevoked, KeyID: "key_1", AppID: testApp, At: time.Now()},
		}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer vt" || r.URL.Path != "/v1/events" {
			http.Error(w, `{"error":{"code":"unauthorized","message":"no"}}`, http.StatusUnauthorized)
			return
		}
		after := r.URL.Query().Get("after")
		mu.Lock()
		afters = append(afters, after)
		n := len(afters)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case after == "":
			fmt.Fprint(w, `{"events":[],"next":4}`)
		case after == "4" && n == 2:
			w.WriteHeader(http.StatusGone)
			fmt.Fprint(w, `{"error":{"code":"cursor_expired","message":"too old"}}`)
		case after == "4":
			<-release
			json.NewEncoder(w).Encode(map[string]any{"events": events, "next": 5})
		default:
			if r.URL.Query().Get("wait") != "30s" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			select { // a long-poll with nothing new
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
		}
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{BaseURL: srv.URL, Token: "vt"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	svc := newFakeService()
	e := newTestEngine(t, Config{}, svc, nil)
	k := svc.addKey(t, testApp, "key_1", time.Time{})
	f, err := NewFeed(FeedConfig{App: testApp, BackoffMin: time.Millisecond}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Follow(f)()
	f.Start()
	defer f.Close()
	// Once the feed waits on its second "after=4", it has purged at the
	// head for the last time: what is cached now must be evicted by seq 5.
	eventually(t, "second after=4", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(afters) >= 4
	})
	if d, _ := e.Check(context.Background(), k); !d.Valid {
		t.Fatalf("setup: %+v", d)
	}
	close(release)
	eventually(t, "seq 5 applied", func() bool { return f.Stats().LastSeq == 5 })
	if d, _ := e.Check(context.Background(), k); d.Valid || d.Code != CodeRevoked || d.Source != SourceCache {
		t.Fatalf("revoked key: %+v; want REVOKED from the cache", d)
	}
	eventually(t, "long-poll after 5", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(afters) >= 5
	})
	mu.Lock()
	got := afters[:5]
	mu.Unlock()
	want := []string{"", "4", "", "4", "5"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("after= sequence %q; want %q", got, want)
		}
	}
	f.Close() // must end the pending long-poll; noGoroutineLeak checks
}
