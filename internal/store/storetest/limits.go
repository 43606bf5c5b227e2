package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// A key's limits are stored at creation, read back by every read (the
// verify lookup too), replaced by UpdateKeyLimits with a key.updated event
// and an audit record, and inherited by a roll. Only a live key of the
// caller's organization can be updated.
func testKeyLimits(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	lim := store.Limits{RateLimit: &store.RateLimit{Requests: 5, Per: time.Second}, AllowedCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}}
	k := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: "limited", Prefix: "cak_abcdef", Hash: id("v1:h"),
		ExpiresAt: t0.Add(24 * time.Hour), CreatedAt: t0, CreatedBy: f.owner.ID, Limits: lim}
	must(t, s.CreateKey(ctx, k, nil))
	got, err := s.GetKey(ctx, f.org.ID, k.ID)
	must(t, err)
	if !reflect.DeepEqual(got.Limits, lim) {
		t.Fatalf("limits read back %+v, want %+v", got.Limits, lim)
	}
	v, err := s.KeyForVerify(ctx, k.Hash)
	must(t, err)
	if !reflect.DeepEqual(v.Limits, lim) {
		t.Fatalf("verify lookup read %+v, want %+v", v.Limits, lim)
	}
	plain := f.key(t, f.app.ID, f.owner.ID, "plain", t0.Add(24*time.Hour))
	if got, _ := s.GetKey(ctx, f.org.ID, plain.ID); got.Limits.RateLimit != nil || got.Limits.AllowedCIDRs != nil {
		t.Fatalf("a key created without limits has %+v", got.Limits)
	}

	// Update: an event for the sidecars, an audit record saying what changed.
	head, _ := s.EventHead(ctx)
	at := t0.Add(time.Minute)
	next := store.Limits{RateLimit: &store.RateLimit{Requests: 100, Per: time.Hour}}
	up, err := s.UpdateKeyLimits(ctx, f.org.ID, k.ID, f.owner.ID, to(next), at)
	must(t, err)
	if !reflect.DeepEqual(up.Limits, next) {
		t.Fatalf("UpdateKeyLimits answered %+v", up.Limits)
	}
	if got, _ := s.GetKey(ctx, f.org.ID, k.ID); !reflect.DeepEqual(got.Limits, next) {
		t.Fatalf("after the update: %+v", got.Limits)
	}
	evs, _, err := s.EventsAfter(ctx, f.app.ID, head, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != store.EventKeyUpdated || evs[0].KeyID != k.ID {
		t.Fatalf("events after the update = %+v, %v", evs, err)
	}
	recs, err := s.ListAudit(ctx, f.org.ID, 1)
	if err != nil || len(recs) != 1 || recs[0].Action != "key.update" || recs[0].Target != k.ID ||
		recs[0].Detail != "was rate_limit 5/1s, allowed_cidrs 10.0.0.0/8 2001:db8::/32, now rate_limit 100/1h" {
		t.Fatalf("audit after the update = %+v, %v", recs, err)
	}

	// A roll keeps the limits on the new key.
	r, err := s.RollKey(ctx, f.roll(k.ID, at, at.Add(time.Hour)))
	must(t, err)
	if got, _ := s.GetKey(ctx, f.org.ID, r.New.ID); !reflect.DeepEqual(got.Limits, next) {
		t.Fatalf("the rolled-to key has %+v, want the old key's %+v", got.Limits, next)
	}
	// Clearing.
	cleared, err := s.UpdateKeyLimits(ctx, f.org.ID, r.New.ID, f.owner.ID, to(store.Limits{}), at)
	if err != nil || cleared.Limits.RateLimit != nil || len(cleared.Limits.AllowedCIDRs) != 0 {
		t.Fatalf("clearing: %+v, %v", cleared.Limits, err)
	}

	// Another organization's key is not found; so is a revoked key.
	other := setup(t, s)
	if _, err := s.UpdateKeyLimits(ctx, other.org.ID, plain.ID, other.owner.ID, to(next), at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another organization's key: %v", err)
	}
	if _, err := s.RevokeKey(ctx, f.org.ID, plain.ID, f.owner.ID, true, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateKeyLimits(ctx, f.org.ID, plain.ID, f.owner.ID, to(next), at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a revoked key: %v", err)
	}
	expired := f.key(t, f.app.ID, f.owner.ID, "expired", t0.Add(time.Second))
	if _, err := s.UpdateKeyLimits(ctx, f.org.ID, expired.ID, f.owner.ID, to(next), at); !errors.Is(err, store.ErrKeyExpired) {
		t.Fatalf("an expired key: %v", err)
	}
	if _, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateKeyLimits(ctx, f.org.ID, r.New.ID, f.owner.ID, to(next), at); !errors.Is(err, store.ErrOrphaned) {
		t.Fatalf("an orphaned key: %v", err)
	}
}

// to is an UpdateKeyLimits change that sets l.
func to(l store.Limits) func(store.Limits) (store.Limits, error) {
	return func(store.Limits) (store.Limits, error) { return l, nil }
}

// Concurrent updates of different limits of one key both land: each
// change reads the limits the one before it wrote.
func testConcurrentLimitUpdates(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "raced", t0.Add(24*time.Hour))
	at := t0.Add(time.Minute)
	const rounds = 10
	var wg sync.WaitGroup
	for i := range 2 * rounds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateKeyLimits(ctx, f.org.ID, k.ID, f.owner.ID, func(l store.Limits) (store.Limits, error) {
				if i%2 == 0 {
					l.RateLimit = &store.RateLimit{Requests: i + 1, Per: time.Second}
				} else {
					l.AllowedCIDRs = append(l.AllowedCIDRs, fmt.Sprintf("10.%d.0.0/16", i))
				}
				return l, nil
			}, at)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.GetKey(ctx, f.org.ID, k.ID)
	must(t, err)
	if got.Limits.RateLimit == nil || len(got.Limits.AllowedCIDRs) != rounds {
		t.Fatalf("after %d concurrent updates of each limit: %+v (%d networks)", rounds, got.Limits, len(got.Limits.AllowedCIDRs))
	}
}
