package keyservice

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// TestFeedWakesWhileUsageFlushWaits: a flush of last-used times stuck on a
// locked row (as a big flush on a busy PostgreSQL is slow) must not hold
// back the feed: a revocation wakes the sidecars' long-polls at once.
func TestFeedWakesWhileUsageFlushWaits(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, ownerToken := bootstrapped(t, st, Config{FeedPoll: time.Hour, UsageFlush: 20 * time.Millisecond})
	owner, err := svc.Authenticate(ctx, ownerToken)
	if err != nil {
		t.Fatal(err)
	}
	app, err := svc.CreateApp(ctx, owner, "fn", KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := svc.Authenticate(ctx, app.VerifierToken)
	if err != nil {
		t.Fatal(err)
	}
	used, err := svc.CreateKey(ctx, owner, app.App.ID, CreateKeyRequest{Name: "used", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := svc.CreateKey(ctx, owner, app.App.ID, CreateKeyRequest{Name: "revoked", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	// Another session holds the used key's row, so the flush of its
	// last-used time waits for as long as the test wants.
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	lock, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.ExecContext(ctx, `SELECT id FROM api_keys WHERE id = $1 FOR UPDATE`, used.Key.ID); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { svc.Run(runCtx); close(ran) }()
	defer func() { lock.Rollback(); stop(); <-ran }()

	if v, err := svc.Verify(ctx, verifier, used.Plain); err != nil || !v.Valid {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	// Wait until the flush is stuck on the lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE api_keys SET last_used_at%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the usage flush never reached the locked row")
		}
		time.Sleep(10 * time.Millisecond)
	}

	_, head, err := svc.Events(ctx, verifier, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	type page struct {
		events []Event
		err    error
	}
	got := make(chan page, 1)
	go func() {
		ev, _, err := svc.Events(ctx, verifier, &head, 10*time.Second)
		got <- page{ev, err}
	}()
	time.Sleep(50 * time.Millisecond) // let the long-poll start waiting
	if err := svc.RevokeKey(ctx, owner, revoked.Key.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p.err != nil || len(p.events) != 1 || p.events[0].KeyID != revoked.Key.ID {
			t.Fatalf("the long-poll answered %+v, %v; want the revocation", p.events, p.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the revocation did not wake the long-poll while a usage flush was stuck")
	}
}
