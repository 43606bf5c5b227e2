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

// testFeedAfter: the replica-wide read of every app's events that a key
// service keeps its tail of the feed with. Pages hold every app's events
// in order and resume without a gap; the head and the pruned mark come
// from the same snapshot; a position past the head is reported, not hidden.
func testFeedAfter(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	other := setup(t, s)
	start, _ := s.EventHead(ctx)
	for i := range 4 {
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
	p, err := s.FeedAfter(ctx, start, 5)
	if err != nil || len(p.Events) != 5 || p.Next != p.Events[4].Seq || p.Head != head {
		t.Fatalf("page 1: %d events, next %d, head %d (want %d), %v", len(p.Events), p.Next, p.Head, head, err)
	}
	apps := map[string]int{}
	last := start
	for _, e := range p.Events {
		if e.Seq != last+1 {
			t.Fatalf("event %d after %d: a gap or out of order", e.Seq, last)
		}
		last = e.Seq
		apps[e.AppID]++
	}
	if apps[f.app.ID] == 0 || apps[other.app.ID] == 0 {
		t.Fatalf("page 1 holds one app's events only: %v", apps)
	}
	p, err = s.FeedAfter(ctx, p.Next, 5)
	if err != nil || len(p.Events) != 3 || p.Next != head || p.Events[0].Seq != last+1 {
		t.Fatalf("page 2: %+v, %v", p, err)
	}
	if p, err = s.FeedAfter(ctx, head, 5); err != nil || len(p.Events) != 0 || p.Next != head {
		t.Fatalf("at the head: %+v, %v", p, err)
	}
	// Past the head (the database went back in time): reported as such.
	if p, err = s.FeedAfter(ctx, head+10, 5); err != nil || len(p.Events) != 0 || p.Head != head {
		t.Fatalf("past the head: %+v, %v", p, err)
	}
	if h, pruned, err := s.FeedMarks(ctx); err != nil || h != head || pruned != 0 {
		t.Fatalf("FeedMarks = %d, %d, %v", h, pruned, err)
	}
	if _, err := s.PruneEvents(ctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	h, pruned, err := s.FeedMarks(ctx)
	if err != nil || h != head || pruned != start+4 {
		t.Fatalf("FeedMarks after the prune = %d, %d, %v; want %d, %d", h, pruned, err, head, start+4)
	}
	if p, err = s.FeedAfter(ctx, 0, 100); err != nil || p.PrunedThrough != pruned || len(p.Events) != 4 || p.Events[0].Seq != pruned+1 {
		t.Fatalf("after the prune: %d events from %d, pruned %d, %v", len(p.Events), p.Events[0].Seq, p.PrunedThrough, err)
	}
}

// testFeedChangeHeard: OnFeedChange hears each committed change to the
// feed, after its commit, with the new head or the pruned mark; a write
// without events, or one that fails, is not heard.
func testFeedChangeHeard(t *testing.T, s *store.Store) {
	ctx := context.Background()
	var mu sync.Mutex
	var heard []store.FeedChange
	s.OnFeedChange(func(c store.FeedChange) {
		// After the commit: what it tells of is already readable.
		if c.Head > 0 {
			if h, _ := s.EventHead(ctx); h < c.Head {
				t.Errorf("heard of head %d while the store's is %d: before the commit", c.Head, h)
			}
		}
		mu.Lock()
		heard = append(heard, c)
		mu.Unlock()
	})
	f := setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "k", t0.Add(time.Hour))
	if len(heard) != 0 {
		t.Fatalf("heard %+v for writes without events", heard)
	}
	if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, t0); err != nil {
		t.Fatal(err)
	}
	head, _ := s.EventHead(ctx)
	if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, false, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	if _, err := s.PruneEvents(ctx, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want := []store.FeedChange{{Head: head}, {PrunedThrough: head}}
	if fmt.Sprint(heard) != fmt.Sprint(want) {
		t.Fatalf("heard %+v, want %+v", heard, want)
	}
}
