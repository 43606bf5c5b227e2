package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// testKeysByHashes: a leak report's keys are found in bulk, of any
// organization, revoked or not, past one query's share of hashes.
func testKeysByHashes(t *testing.T, s *store.Store) {
	ctx := context.Background()
	a, b := setup(t, s), setup(t, s)
	ka := a.key(t, a.app.ID, a.owner.ID, "a", t0.Add(time.Hour))
	kb := b.key(t, b.app.ID, b.owner.ID, "b", t0.Add(time.Hour))
	gone := a.key(t, a.app.ID, a.owner.ID, "gone", t0.Add(time.Hour))
	if _, err := s.RevokeKey(ctx, a.org.ID, gone.ID, a.owner.ID, true, t0); err != nil {
		t.Fatal(err)
	}
	hashes := []string{ka.Hash}
	for i := range 600 {
		hashes = append(hashes, fmt.Sprintf("v1:unknown%d", i))
	}
	hashes = append(hashes, kb.Hash, gone.Hash) // past the first chunk
	keys, err := s.KeysByHashes(ctx, hashes)
	if err != nil {
		t.Fatal(err)
	}
	ids := sortedIDs(keys)
	want := []string{ka.ID, kb.ID, gone.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("KeysByHashes = %v; want %v", ids, want)
	}
	if keys, err := s.KeysByHashes(ctx, nil); err != nil || len(keys) != 0 {
		t.Fatalf("KeysByHashes(none) = %v, %v", keys, err)
	}
}

// testMarkLeakedRevokes: a leak report revokes live and orphaned keys
// with the reason leaked, writes their key.revoked events and audit
// records, and leaves a key revoked by hand as it was; a second report
// changes nothing.
func testMarkLeakedRevokes(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	live := f.key(t, f.app.ID, f.owner.ID, "live", t0.Add(time.Hour))
	byHand := f.key(t, f.app.ID, f.owner.ID, "by-hand", t0.Add(time.Hour))
	if _, err := s.RevokeKey(ctx, f.org.ID, byHand.ID, f.owner.ID, true, t0); err != nil {
		t.Fatal(err)
	}
	other := setup(t, s)
	foreign := other.key(t, other.app.ID, other.owner.ID, "foreign", t0.Add(time.Hour))
	_, head, err := s.EventsAfter(ctx, f.app.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	leaks := []store.Leak{{KeyID: live.ID, Detail: "found at x"}, {KeyID: byHand.ID, Detail: "y"}, {KeyID: foreign.ID, Detail: "z"}, {KeyID: "key_nope", Detail: "n"}}
	changed, err := s.MarkLeaked(ctx, leaks, "github", true, at)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(changed)
	want := []string{live.ID, foreign.ID}
	slices.Sort(want)
	if !slices.Equal(changed, want) {
		t.Fatalf("MarkLeaked changed %v; want %v", changed, want)
	}
	got, _ := s.GetKey(ctx, f.org.ID, live.ID)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at) || got.RevokeReason != store.RevokeLeaked || got.LeakedAt == nil || !got.LeakedAt.Equal(at) {
		t.Fatalf("leaked key = revoked %v reason %q leaked %v", got.RevokedAt, got.RevokeReason, got.LeakedAt)
	}
	got, _ = s.GetKey(ctx, f.org.ID, byHand.ID)
	if got.RevokeReason != "" || got.LeakedAt != nil || !got.RevokedAt.Equal(t0) {
		t.Fatalf("key revoked by hand changed: reason %q leaked %v revoked %v", got.RevokeReason, got.LeakedAt, got.RevokedAt)
	}
	evs, _, err := s.EventsAfter(ctx, f.app.ID, head, 100)
	if err != nil || len(evs) != 1 || evs[0].Type != store.EventKeyRevoked || evs[0].KeyID != live.ID {
		t.Fatalf("events after the report = %+v, %v; want one key.revoked of %s", evs, err, live.ID)
	}
	recs, _ := s.ListAudit(ctx, f.org.ID, 1)
	if len(recs) != 1 || recs[0].Action != "key.revoke" || recs[0].Actor != "github" || recs[0].Target != live.ID || recs[0].Detail != "found at x" {
		t.Fatalf("audit = %+v", recs)
	}
	recs, _ = s.ListAudit(ctx, other.org.ID, 1)
	if len(recs) != 1 || recs[0].Target != foreign.ID || recs[0].Detail != "z" {
		t.Fatalf("other org's audit = %+v", recs)
	}
	again, err := s.MarkLeaked(ctx, leaks, "github", true, at.Add(time.Minute))
	if err != nil || len(again) != 0 {
		t.Fatalf("second report changed %v, %v; want nothing", again, err)
	}
	if evs, _, _ := s.EventsAfter(ctx, f.app.ID, head, 100); len(evs) != 1 {
		t.Fatalf("second report wrote events: %+v", evs)
	}
}

// testMarkLeakedNotifies: without revoke, a reported key keeps working,
// marked leaked at its first report, and the leaked lists find it.
func testMarkLeakedNotifies(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "k", t0.Add(time.Hour))
	clean := f.key(t, f.app.ID, f.owner.ID, "clean", t0.Add(time.Hour))
	at := t0.Add(time.Minute)
	for i, when := range []time.Time{at, at.Add(time.Hour)} {
		changed, err := s.MarkLeaked(ctx, []store.Leak{{KeyID: k.ID, Detail: fmt.Sprintf("report %d", i)}}, "github", false, when)
		if err != nil || len(changed) != 1 {
			t.Fatalf("report %d: changed %v, %v", i, changed, err)
		}
	}
	got, _ := s.GetKey(ctx, f.org.ID, k.ID)
	if got.RevokedAt != nil || got.LeakedAt == nil || !got.LeakedAt.Equal(at) {
		t.Fatalf("notified key: revoked %v, leaked %v; want live, leaked at %v", got.RevokedAt, got.LeakedAt, at)
	}
	yes, no := true, false
	for _, c := range []struct {
		leaked *bool
		want   []string
	}{{&yes, []string{k.ID}}, {&no, []string{clean.ID}}, {nil, []string{k.ID, clean.ID}}} {
		keys, err := s.ListKeys(ctx, store.KeyFilter{OrgID: f.org.ID, AppID: f.app.ID, Leaked: c.leaked, Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		ids := sortedIDs(keys)
		slices.Sort(c.want)
		if !slices.Equal(ids, c.want) {
			t.Fatalf("ListKeys(leaked %v) = %v; want %v", c.leaked, ids, c.want)
		}
	}
	recs, _ := s.ListAudit(ctx, f.org.ID, 2)
	if len(recs) != 2 || recs[0].Action != store.AuditKeyLeaked || recs[0].Detail != "report 1" || recs[1].Detail != "report 0" {
		t.Fatalf("audit = %+v", recs)
	}
}

// testConcurrentLeakReports: GitHub may deliver one report twice at once;
// every key is revoked once, with one event and one audit record.
func testConcurrentLeakReports(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	var leaks []store.Leak
	for i := range 50 {
		leaks = append(leaks, store.Leak{KeyID: f.key(t, f.app.ID, f.owner.ID, fmt.Sprint("k", i), t0.Add(time.Hour)).ID, Detail: "d"})
	}
	_, head, err := s.EventsAfter(ctx, f.app.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	changed := make([][]string, 4)
	for i := range changed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each report lists the keys in another order.
			mine := slices.Clone(leaks)
			if i%2 == 1 {
				slices.Reverse(mine)
			}
			c, err := s.MarkLeaked(ctx, mine, "github", true, t0)
			if err != nil {
				t.Error(err)
			}
			changed[i] = c
		}()
	}
	wg.Wait()
	total := 0
	for _, c := range changed {
		total += len(c)
	}
	evs, _, err := s.EventsAfter(ctx, f.app.ID, head, 1000)
	if err != nil || total != len(leaks) || len(evs) != len(leaks) {
		t.Fatalf("%d concurrent reports of %d keys: %d revocations, %d events (%v); want %d of each", len(changed), len(leaks), total, len(evs), err, len(leaks))
	}
}

// sortedIDs are the ids of keys, sorted, for comparing lists whose order
// is not what is tested.
func sortedIDs(keys []store.Key) []string {
	ids := []string{}
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	slices.Sort(ids)
	return ids
}
