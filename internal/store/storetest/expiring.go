package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// testExpiringKeys: ExpiresBy narrows ListKeys to the unexpired keys due by
// then, boundary included, of the filter's organization and app alone; and
// CountKeys counts the same over the whole store. Revoked, orphaned and
// expired keys due soon are in neither, nor is a key rolled away.
func testExpiringKeys(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	const day = 24 * time.Hour
	by := t0.Add(7 * day)
	soon := f.key(t, f.app.ID, f.owner.ID, "soon", t0.Add(3*day))
	edge := f.key(t, f.app.ID, f.owner.ID, "edge", by)
	f.key(t, f.app.ID, f.owner.ID, "after-edge", by.Add(time.Microsecond))
	f.key(t, f.app.ID, f.owner.ID, "late", t0.Add(30*day))
	f.key(t, f.app.ID, f.owner.ID, "expired", t0.Add(-time.Hour))
	f.key(t, f.app.ID, f.owner.ID, "expires-now", t0)
	revoked := f.key(t, f.app.ID, f.owner.ID, "revoked", t0.Add(3*day))
	if _, err := s.RevokeKey(ctx, f.org.ID, revoked.ID, f.owner.ID, false, t0); err != nil {
		t.Fatal(err)
	}
	gone := store.App{ID: id("app"), OrgID: f.org.ID, Name: "gone", Kind: "cloud_function", VerifierHash: id("ver"), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateApp(ctx, gone); err != nil {
		t.Fatal(err)
	}
	f.key(t, gone.ID, f.owner.ID, "orphaned", t0.Add(3*day))
	if _, err := s.DeleteApp(ctx, f.org.ID, gone.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	// A key rolled away, in its overlap: it is due soon, but its
	// replacement already stands, so there is nothing to act on. Counting
	// it would fire the expiring-soon alert after every roll.
	rolled := f.key(t, f.app.ID, f.owner.ID, "rolled", t0.Add(60*day))
	if _, err := s.RollKey(ctx, f.roll(rolled.ID, t0, t0.Add(day))); err != nil {
		t.Fatal(err)
	}
	other := setup(t, s)
	otherSoon := other.key(t, other.app.ID, other.owner.ID, "soon", t0.Add(2*day))

	list := func(org, app string) []string {
		t.Helper()
		keys, err := s.ListKeys(ctx, store.KeyFilter{OrgID: org, AppID: app, Select: store.UnexpiredKeys, Now: t0, ExpiresBy: by})
		if err != nil {
			t.Fatal(err)
		}
		return sortedIDs(keys)
	}
	want := []string{soon.ID, edge.ID}
	slices.Sort(want)
	for _, app := range []string{"", f.app.ID} {
		if got := list(f.org.ID, app); !slices.Equal(got, want) {
			t.Errorf("expiring keys of org, app %q = %v, want %v", app, got, want)
		}
	}
	if got := list(f.org.ID, gone.ID); len(got) != 0 {
		t.Errorf("expiring keys of the deleted app = %v, want none", got)
	}
	if got := list(other.org.ID, ""); !slices.Equal(got, []string{otherSoon.ID}) {
		t.Errorf("expiring keys of the other org = %v, want only its own", got)
	}
	// Another organization's app id under this organization lists nothing.
	if got := list(f.org.ID, other.app.ID); len(got) != 0 {
		t.Errorf("org 1 asking for org 2's app = %v", got)
	}

	c, err := s.CountKeys(ctx, t0, by)
	if err != nil {
		t.Fatal(err)
	}
	// Unexpired: soon, edge, after-edge, late, rolled and its successor,
	// and other's soon.
	if want := (store.KeyCounts{Unexpired: 7, Expired: 2, Orphaned: 1, Expiring: 3}); c != want {
		t.Errorf("CountKeys = %+v, want %+v", c, want)
	}
}
