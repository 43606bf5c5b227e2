package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// BenchmarkCreateKeyWebhooks is what webhooks add to a key's creation on
// SQLite: nothing but a count for an organization without endpoints, a
// queued message per endpoint for one with them; and what claiming and
// finishing a message costs (the worker's share of a delivery, without
// the HTTP round trip). On PostgreSQL too when the make test cluster is
// there (scripts/with-postgres.sh).
func BenchmarkCreateKeyWebhooks(b *testing.B) {
	dbs := []string{"sqlite"}
	if pgtest.Available() {
		dbs = append(dbs, "postgres")
	}
	for _, db := range dbs {
		for _, endpoints := range []int{0, 1, 5} {
			benchCreateKeyWebhooks(b, db, endpoints)
		}
	}
}

func benchCreateKeyWebhooks(b *testing.B, db string, endpoints int) {
	b.Run(fmt.Sprintf("%s/endpoints=%d", db, endpoints), func(b *testing.B) {
		dsn := filepath.Join(b.TempDir(), "appkeys.db")
		if db == "postgres" {
			dsn = pgtest.NewDatabase(b)
		}
		s, err := store.Open(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		t0 := time.Now()
		org := store.Org{ID: "org_b", Name: "b", CreatedAt: t0}
		owner := store.User{ID: "usr_b", OrgID: org.ID, Email: "o@b", Role: "owner", TokenHash: "tok_b", CreatedAt: t0}
		if err := s.CreateOrg(ctx, org, owner, "admin"); err != nil {
			b.Fatal(err)
		}
		app := store.App{ID: "app_b", OrgID: org.ID, Name: "fn", Kind: "cloud_function", VerifierHash: "ver_b", CreatedAt: t0, CreatedBy: owner.ID}
		if err := s.CreateApp(ctx, app); err != nil {
			b.Fatal(err)
		}
		for i := range endpoints {
			e := store.WebhookEndpoint{ID: fmt.Sprintf("whk_%d", i), OrgID: org.ID, URL: "https://example.com/", Events: []string{"*"}, Enabled: true, CreatedAt: t0, CreatedBy: owner.ID}
			if err := s.CreateWebhookEndpoint(ctx, e, store.WebhookSecret{ID: fmt.Sprintf("whs_%d", i), EndpointID: e.ID, Ciphertext: []byte("x"), CreatedAt: t0}); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := range b.N {
			k := store.Key{ID: fmt.Sprintf("key_%d", i), OrgID: org.ID, AppID: app.ID, Name: fmt.Sprintf("k%d", i), Prefix: "cak_abcdef",
				Hash: fmt.Sprintf("v1:%d", i), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: owner.ID}
			if err := s.CreateKey(ctx, k, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if endpoints == 0 {
			return
		}
		start := time.Now()
		n := 0
		for range b.N * endpoints {
			msgs, err := s.ClaimWebhookMessages(ctx, time.Now(), time.Minute, 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				if err := s.FinishWebhookAttempt(ctx, m.ID, store.WebhookAttempt{At: time.Now(), Delivered: true, Status: 200}); err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/float64(max(n, 1)), "µs/claim+finish")
	})
}
