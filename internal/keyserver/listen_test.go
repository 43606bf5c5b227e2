package keyserver_test

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// TestFeedPushAcrossReplicas: with the head poll an hour apart, only
// LISTEN/NOTIFY can bring a revocation made through replica B to a
// long-poll waiting on replica A. It does; then the database kills A's and
// B's LISTEN connections (pg_terminate_backend), the replicas connect
// again, say so in appkeys_feed_listen_reconnects_total, and the next
// revocation through B still wakes A's long-poll.
func TestFeedPushAcrossReplicas(t *testing.T) {
	db := pgtest.NewDatabase(t)
	master := masterKey(t)
	slowPoll := func(c *keyserver.Config) { c.FeedPoll = time.Hour }
	a := startReplica(t, db, master, slowPoll)
	b := startReplica(t, db, master, slowPoll)
	ctx := context.Background()
	ownerB := mustClient(t, b.URL, a.Bootstrap.OwnerToken)
	app, err := ownerB.CreateApp(ctx, client.CreateAppRequest{Name: "fn", Kind: "cloud_function"})
	if err != nil {
		t.Fatal(err)
	}
	verifierA := mustClient(t, a.URL, app.VerifierToken)
	raw, err := sql.Open("pgx", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	listeners := func() int {
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, store.ListenerApplicationName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, "both replicas listening", func() bool { return listeners() == 2 })

	revokeThroughB := func(name string) {
		t.Helper()
		head, err := verifierA.EventsHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ownerB.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: name, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan *client.EventPage, 1)
		go func() {
			p, err := verifierA.Events(ctx, head, 30*time.Second)
			if err != nil {
				t.Error(err)
			}
			done <- p
		}()
		waitFor(t, "the long-poll waiting on A", func() bool { return metricValue(t, a, "appkeys_feed_waiting") >= 1 })
		if err := ownerB.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		p := <-done
		if p == nil || len(p.Events) != 1 || p.Events[0].KeyID != k.ID {
			t.Fatalf("%s: A's long-poll answered %+v; want the revocation made through B", name, p)
		}
	}
	revokeThroughB("before")

	if _, err := raw.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, store.ListenerApplicationName); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A to count a reconnect", func() bool { return metricValue(t, a, "appkeys_feed_listen_reconnects_total") >= 1 })
	waitFor(t, "both replicas listening again", func() bool { return listeners() == 2 })
	revokeThroughB("after")
}

// metricValue reads an unlabelled sample from a replica's /metrics.
func metricValue(t *testing.T, s *keyserver.Server, name string) float64 {
	t.Helper()
	text, err := mustClient(t, s.URL, "").Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// waitFor polls cond every 10 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
