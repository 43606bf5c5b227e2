package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// BenchmarkRecordUsage is the store's share of one usage report: one
// upsert of 1,000 keys' counts into the hour's buckets, the buckets
// existing (every report after a sidecar's first of the hour). On
// PostgreSQL when APPKEYS_TEST_STORE=postgres (its server's CPU is not
// this process's).
func BenchmarkRecordUsage(b *testing.B) {
	ctx := context.Background()
	dsn := filepath.Join(b.TempDir(), "appkeys.db")
	if os.Getenv("APPKEYS_TEST_STORE") == "postgres" {
		dsn = pgtest.NewDatabase(b)
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := storetestNow()
	org := store.Org{ID: "org_bench", Name: "bench", CreatedAt: t0}
	owner := store.User{ID: "usr_bench", OrgID: org.ID, Email: "o@bench", Role: "owner", TokenHash: "tok_bench", CreatedAt: t0}
	if err := s.CreateOrg(ctx, org, owner, "admin"); err != nil {
		b.Fatal(err)
	}
	app := store.App{ID: "app_bench", OrgID: org.ID, Name: "fn", Kind: "cloud_function", VerifierHash: "ver_bench", CreatedAt: t0, CreatedBy: owner.ID}
	if err := s.CreateApp(ctx, app); err != nil {
		b.Fatal(err)
	}
	counts := make([]store.UsageCount, store.MaxUsageBatch)
	for i := range counts {
		k := store.Key{ID: fmt.Sprintf("key_bench%06d", i), OrgID: org.ID, AppID: app.ID, Name: fmt.Sprint(i), Prefix: "cak_abcdef",
			Hash: fmt.Sprintf("v1:h%06d", i), ExpiresAt: t0.Add(time.Hour * 24 * 300), CreatedAt: t0, CreatedBy: owner.ID}
		if err := s.CreateKey(ctx, k, nil); err != nil {
			b.Fatal(err)
		}
		counts[i] = store.UsageCount{KeyID: k.ID, Allowed: int64(i%500 + 1), RateLimited: int64(i % 3)}
	}
	if _, err := s.RecordUsage(ctx, app.ID, t0, counts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.RecordUsage(ctx, app.ID, t0, counts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(len(counts)), "µs/key")
}
