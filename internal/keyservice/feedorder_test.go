package keyservice

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestFeedTailConcurrentWriters: 8 writers revoke keys of 4 apps at once
// while 2 long-polls per app follow their app's feed through the tail; each
// sees every event of its app exactly once, in order, and nothing else,
// and agrees with the store.
func TestFeedTailConcurrentWriters(t *testing.T) {
	const apps, writers, perWriter, followers = 4, 8, 15, 2
	w := newFeedWorld(t, Config{FeedTail: 16}, apps) // small: cursors fall behind it too
	ctx := context.Background()
	type key struct {
		id  string
		app int
	}
	keys := make([][]key, writers)
	for wr := range keys {
		rng := rand.New(rand.NewPCG(uint64(wr), 1))
		for i := range perWriter {
			a := rng.IntN(apps)
			k, err := w.svc.CreateKey(ctx, w.owner, w.apps[a].App.ID, CreateKeyRequest{Name: fmt.Sprintf("w%d-%d", wr, i), ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			keys[wr] = append(keys[wr], key{k.Key.ID, a})
		}
	}
	want := make([]map[string]bool, apps)
	for a := range want {
		want[a] = map[string]bool{}
	}
	for _, ks := range keys {
		for _, k := range ks {
			want[k.app][k.id] = true
		}
	}
	start, _ := w.svc.feed.position()

	var followed sync.WaitGroup
	errs := make(chan error, apps*followers)
	for a := range apps {
		for range followers {
			followed.Go(func() {
				seen, cursor, last := map[string]bool{}, start, start
				for deadline := time.Now().Add(60 * time.Second); len(seen) < len(want[a]); {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("app %d: saw %d of %d revocations in 60s", a, len(seen), len(want[a]))
						return
					}
					evs, next, err := w.svc.Events(ctx, w.subs[a], &cursor, 5*time.Second)
					if err != nil {
						errs <- fmt.Errorf("app %d: %w", a, err)
						return
					}
					for _, e := range evs {
						switch {
						case e.AppID != w.apps[a].App.ID || !want[a][e.KeyID]:
							errs <- fmt.Errorf("app %d was shown %+v", a, e)
							return
						case e.Seq <= last || seen[e.KeyID]:
							errs <- fmt.Errorf("app %d: event %d after %d (seen before: %v)", a, e.Seq, last, seen[e.KeyID])
							return
						}
						seen[e.KeyID], last = true, e.Seq
					}
					cursor = next
				}
			})
		}
	}
	var wrote sync.WaitGroup
	for _, ks := range keys {
		wrote.Go(func() {
			for _, k := range ks {
				if err := w.svc.RevokeKey(ctx, w.owner, k.id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wrote.Wait()
	followed.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFeedTailWaitsForUncommittedEvent (PostgreSQL): a transaction has
// taken event number N and not committed; a later writer waits on it. The
// tail must not move past N-1 meanwhile (a tail that did would never show
// event N, a revocation, to anyone), and once both commit, app A's
// long-poll gets N and app B's gets N+1.
func TestFeedTailWaitsForUncommittedEvent(t *testing.T) {
	w := newFeedWorld(t, Config{}, 2)
	if w.st.Dialect() != "postgres" {
		t.Skip("SQLite has one writer at a time: no transaction commits behind another")
	}
	ctx := context.Background()
	raw := w.rawDB(t)
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'event_seq' RETURNING value`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	a := w.apps[0].App
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (seq, org_id, app_id, type, key_id, at) VALUES ($1, $2, $3, 'key.revoked', 'key_uncommitted', $4)`,
		n, a.OrgID, a.ID, time.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
	pollA := w.longPoll(0, n-1, 30*time.Second)
	pollB := w.longPoll(1, n-1, 30*time.Second)
	w.waitingOn(t, 2)

	k, err := w.svc.CreateKey(ctx, w.owner, w.apps[1].App.ID, CreateKeyRequest{Name: "later", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	revoked := make(chan error, 1)
	go func() { revoked <- w.svc.RevokeKey(ctx, w.owner, k.Key.ID) }()
	// The tail reads the store while N is uncommitted and the later
	// revoke waits behind it.
	for range 3 {
		reads := w.svc.FeedStats().StoreReads[FeedReadFollow]
		w.svc.feed.poke()
		for deadline := time.Now().Add(10 * time.Second); w.svc.FeedStats().StoreReads[FeedReadFollow] == reads; {
			if time.Now().After(deadline) {
				t.Fatal("the tail did not read the store within 10s of a poke")
			}
			time.Sleep(time.Millisecond)
		}
	}
	if head, _ := w.svc.feed.position(); head >= n {
		t.Fatalf("the tail moved to %d past the uncommitted event %d", head, n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-revoked; err != nil {
		t.Fatal(err)
	}
	if r := <-pollA; r.err != nil || len(r.events) != 1 || r.events[0].Seq != n || r.events[0].KeyID != "key_uncommitted" {
		t.Fatalf("app A: %+v; want the event committed late, %d", r, n)
	}
	if r := <-pollB; r.err != nil || len(r.events) != 1 || r.events[0].Seq != n+1 || r.events[0].KeyID != k.Key.ID {
		t.Fatalf("app B: %+v; want %d", r, n+1)
	}
}
