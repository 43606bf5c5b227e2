package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func testEventsCursor(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	other := setup(t, s)
	for i := 0; i < 5; i++ {
		k := f.key(t, f.app.ID, f.owner.ID, fmt.Sprint("k", i), t0.Add(time.Hour))
		o := other.key(t, other.app.ID, other.owner.ID, fmt.Sprint("o", i), t0.Add(time.Hour))
		at := t0.Add(time.Duration(i) * time.Hour)
		if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, at); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RevokeKey(ctx, other.org.ID, o.ID, other.owner.ID, false, at); err != nil {
			t.Fatal(err)
		}
	}
	head, _ := s.EventHead(ctx)
	events, next, err := s.EventsAfter(ctx, f.app.ID, 0, 3)
	if err != nil || len(events) != 3 || next != events[2].Seq {
		t.Fatalf("page 1 = %d events, next %d, %v", len(events), next, err)
	}
	for _, e := range events {
		if e.AppID != f.app.ID {
			t.Fatalf("another app's event: %+v", e)
		}
	}
	events, next, err = s.EventsAfter(ctx, f.app.ID, next, 3)
	if err != nil || len(events) != 2 || next != head {
		t.Fatalf("page 2 = %d events, next %d (head %d), %v", len(events), next, head, err)
	}
	events, next2, _ := s.EventsAfter(ctx, f.app.ID, next, 3)
	if len(events) != 0 || next2 != next {
		t.Fatalf("caught up: %d events, next %d", len(events), next2)
	}
	if n, err := s.PruneEvents(ctx, t0.Add(2*time.Hour)); err != nil || n != 4 {
		t.Fatalf("PruneEvents = %d, %v", n, err)
	}
	if _, _, err := s.EventsAfter(ctx, f.app.ID, 0, 10); !errors.Is(err, store.ErrCursorExpired) {
		t.Fatalf("old cursor: %v", err)
	}
	events, _, err = s.EventsAfter(ctx, f.app.ID, 4, 10)
	if err != nil || len(events) != 3 {
		t.Fatalf("cursor at the pruned edge: %d, %v", len(events), err)
	}

	// A cursor past the head (the database was restored, or failed over
	// and lost its last commits) would skip every event numbered up to it:
	// it is refused, and the head itself is fine.
	head, _ = s.EventHead(ctx)
	for _, after := range []int64{head + 1, head + 1000} {
		if _, _, err := s.EventsAfter(ctx, f.app.ID, after, 10); !errors.Is(err, store.ErrCursorAhead) {
			t.Fatalf("cursor %d past the head %d: %v; want ErrCursorAhead", after, head, err)
		}
	}
	if events, next, err := s.EventsAfter(ctx, f.app.ID, head, 10); err != nil || len(events) != 0 || next != head {
		t.Fatalf("cursor at the head: %d events, next %d, %v", len(events), next, err)
	}
}

// testConcurrentEventWriters has many writers commit events while a reader
// follows the feed with a cursor; the reader must see every event exactly
// once and in order.
func testConcurrentEventWriters(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	const writers, perWriter = 8, 15
	keys := make([][]store.Key, writers)
	for w := range keys {
		for i := 0; i < perWriter; i++ {
			keys[w] = append(keys[w], f.key(t, f.app.ID, f.owner.ID, fmt.Sprintf("w%d-%d", w, i), t0.Add(time.Hour)))
		}
	}
	start, _ := s.EventHead(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for _, k := range keys[w] {
				if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, t0); err != nil {
					t.Errorf("revoke: %v", err)
				}
			}
		}(w)
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	cursor, last := start, start
	finished := false
	for i := 0; i < 100000 && len(seen) < writers*perWriter; i++ {
		events, next, err := s.EventsAfter(ctx, f.app.ID, cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Seq <= last {
				t.Fatalf("event %d after %d: out of order", e.Seq, last)
			}
			if seen[e.KeyID] {
				t.Fatalf("event for %s twice", e.KeyID)
			}
			seen[e.KeyID], last = true, e.Seq
		}
		cursor = next
		if finished && len(events) == 0 {
			break
		}
		select {
		case <-done:
			finished = true
		default:
		}
	}
	<-done
	if len(seen) != writers*perWriter {
		t.Fatalf("reader saw %d events, want %d", len(seen), writers*perWriter)
	}
}
