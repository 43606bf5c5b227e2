package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// testUsage: a report adds to the hour's buckets of the reporting app's
// keys only (another app's key, another organization's and an unknown id
// are left out and not returned), a second report in the same hour adds
// to the first, the reads see one organization and window only, and the
// prune drops old hours.
func testUsage(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	exp := t0.Add(365 * 24 * time.Hour)
	appB := store.App{ID: id("app"), OrgID: f.org.ID, Name: "other", Kind: "cloud_function", VerifierHash: id("ver"), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateApp(ctx, appB); err != nil {
		t.Fatal(err)
	}
	k1 := f.key(t, f.app.ID, f.owner.ID, "one", exp)
	k2 := f.key(t, f.app.ID, f.owner.ID, "two", exp)
	kB := f.key(t, appB.ID, f.owner.ID, "b", exp)
	g := setup(t, s) // another organization
	kG := g.key(t, g.app.ID, g.owner.ID, "g", exp)

	h0 := t0.Add(25 * time.Minute) // bucketed to t0's hour
	taken, err := s.RecordUsage(ctx, f.app.ID, h0, []store.UsageCount{
		{KeyID: k2.ID, Allowed: 5, RateLimited: 2},
		{KeyID: kB.ID, Allowed: 100},
		{KeyID: kG.ID, Allowed: 100},
		{KeyID: "key_nosuchkey", Allowed: 100},
		{KeyID: k1.ID, Allowed: 1, Forbidden: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedIDs([]store.Key{k1, k2}); !reflect.DeepEqual(taken, want) {
		t.Fatalf("taken %v, want %v", taken, want)
	}
	if _, err := s.RecordUsage(ctx, f.app.ID, h0.Add(30*time.Minute), []store.UsageCount{{KeyID: k1.ID, Allowed: 10}}); err != nil {
		t.Fatal(err)
	}
	h1 := t0.Add(time.Hour)
	if _, err := s.RecordUsage(ctx, f.app.ID, h1, []store.UsageCount{{KeyID: k1.ID, Allowed: 7}}); err != nil {
		t.Fatal(err)
	}

	pts, err := s.KeyUsage(ctx, f.org.ID, k1.ID, t0.Add(-time.Hour), t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.UsagePoint{{Hour: t0, Allowed: 11, Forbidden: 3}, {Hour: h1, Allowed: 7}}
	if !reflect.DeepEqual(pts, want) {
		t.Fatalf("k1's points %+v, want %+v", pts, want)
	}
	// Another organization reads nothing of it, and the window is half open.
	if pts, err := s.KeyUsage(ctx, g.org.ID, k1.ID, t0.Add(-time.Hour), t0.Add(24*time.Hour)); err != nil || len(pts) != 0 {
		t.Fatalf("another org reads %+v, %v", pts, err)
	}
	if pts, err := s.KeyUsage(ctx, f.org.ID, k1.ID, t0, h1); err != nil || len(pts) != 1 {
		t.Fatalf("[t0, h1) reads %+v, %v", pts, err)
	}
	// Nothing was written for the other app's or organization's keys.
	for _, k := range []store.Key{kB, kG} {
		if pts, err := s.KeyUsage(ctx, k.OrgID, k.ID, t0.Add(-time.Hour), t0.Add(24*time.Hour)); err != nil || len(pts) != 0 {
			t.Fatalf("%s got usage it was not reported by its own app: %+v, %v", k.Name, pts, err)
		}
	}

	tot, err := s.UsageTotals(ctx, f.org.ID, f.app.ID, t0, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	wantTot := []store.UsageCount{{KeyID: k1.ID, Allowed: 18, Forbidden: 3}, {KeyID: k2.ID, Allowed: 5, RateLimited: 2}}
	if !reflect.DeepEqual(tot, wantTot) {
		t.Fatalf("totals %+v, want %+v", tot, wantTot)
	}
	if tot, err := s.UsageTotals(ctx, f.org.ID, appB.ID, t0, t0.Add(2*time.Hour)); err != nil || len(tot) != 0 {
		t.Fatalf("app B's totals %+v, %v", tot, err)
	}
	if tot, err := s.UsageTotals(ctx, g.org.ID, "", t0, t0.Add(2*time.Hour)); err != nil || len(tot) != 0 {
		t.Fatalf("another org's totals %+v, %v", tot, err)
	}

	n, err := s.PruneUsage(ctx, h1)
	if err != nil || n != 2 {
		t.Fatalf("prune before h1: %d, %v (want the two t0 buckets)", n, err)
	}
	if pts, err := s.KeyUsage(ctx, f.org.ID, k1.ID, t0.Add(-time.Hour), t0.Add(24*time.Hour)); err != nil || len(pts) != 1 || !pts[0].Hour.Equal(h1) {
		t.Fatalf("after the prune: %+v, %v", pts, err)
	}
}

// testUsageFullBatch: a report of MaxUsageBatch keys is one write.
func testUsageFullBatch(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	exp := t0.Add(365 * 24 * time.Hour)
	counts := make([]store.UsageCount, store.MaxUsageBatch)
	for i := range counts {
		k := f.key(t, f.app.ID, f.owner.ID, fmt.Sprintf("k%d", i), exp)
		counts[i] = store.UsageCount{KeyID: k.ID, Allowed: int64(i + 1)}
	}
	taken, err := s.RecordUsage(ctx, f.app.ID, t0, counts)
	if err != nil || len(taken) != len(counts) {
		t.Fatalf("a full batch took %d, %v", len(taken), err)
	}
	tot, err := s.UsageTotals(ctx, f.org.ID, "", t0, t0.Add(time.Hour))
	if err != nil || len(tot) != len(counts) {
		t.Fatalf("totals of a full batch: %d, %v", len(tot), err)
	}
	if _, err := s.RecordUsage(ctx, f.app.ID, t0, append(counts, store.UsageCount{KeyID: "key_x"})); err == nil {
		t.Fatal("a batch over MaxUsageBatch was taken")
	}
}
