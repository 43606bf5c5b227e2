package keyserver_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

func masterKey(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// testLog sends a server's log lines to the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startReplica(t *testing.T, dbURL, master string, opts ...func(*keyserver.Config)) *keyserver.Server {
	t.Helper()
	cfg := keyserver.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), DatabaseURL: dbURL, MasterKey: master, FeedPoll: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := keyserver.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	return srv
}

func mustClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTwoReplicas runs two key services on one PostgreSQL database: a key
// created through one verifies through the other, and a feed read through A
// sees every revocation written through A and B at once, in order, none
// skipped or doubled, each within a second.
func TestTwoReplicas(t *testing.T) {
	db := pgtest.NewDatabase(t)
	master := masterKey(t)
	a := startReplica(t, db, master)
	b := startReplica(t, db, master)
	if !a.Bootstrap.Created || b.Bootstrap.Created {
		t.Fatalf("bootstrap: A created %v, B created %v; want only the first", a.Bootstrap.Created, b.Bootstrap.Created)
	}
	ctx := context.Background()
	ownerA := mustClient(t, a.URL, a.Bootstrap.OwnerToken)
	ownerB := mustClient(t, b.URL, a.Bootstrap.OwnerToken)
	app, err := ownerA.CreateApp(ctx, client.CreateAppRequest{Name: "fn", Kind: "cloud_function"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := ownerA.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: "k", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	verifierB := mustClient(t, b.URL, app.VerifierToken)
	if v, err := verifierB.Verify(ctx, k.PlainKey); err != nil || v.Code != "VALID" {
		t.Fatalf("verify through B = %+v, %v", v, err)
	}

	verifierA := mustClient(t, a.URL, app.VerifierToken)
	head, err := verifierA.EventsHead(ctx)
	if err != nil {
		t.Fatal(err)
	}

	const perReplica = 25
	type revoked struct {
		id string
		at time.Time
	}
	acked := make(chan revoked, 2*perReplica)
	var wg sync.WaitGroup
	for r, owner := range []*client.Client{ownerA, ownerB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perReplica; i++ {
				key, err := owner.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: fmt.Sprintf("r%d-%d", r, i), ExpiresAt: time.Now().Add(time.Hour)})
				if err != nil {
					t.Errorf("create through replica %d: %v", r, err)
					return
				}
				if err := owner.RevokeKey(ctx, key.ID); err != nil {
					t.Errorf("revoke through replica %d: %v", r, err)
					return
				}
				acked <- revoked{key.ID, time.Now()}
			}
		}()
	}

	seen := map[string]time.Time{}
	var last int64
	cursor := head
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < 2*perReplica && time.Now().Before(deadline) {
		page, err := verifierA.Events(ctx, cursor, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if e.Seq <= last {
				t.Fatalf("event %d after %d", e.Seq, last)
			}
			last = e.Seq
			if e.Type != "key.revoked" {
				t.Fatalf("unexpected event %+v", e)
			}
			if _, dup := seen[e.KeyID]; dup {
				t.Fatalf("event for %s twice", e.KeyID)
			}
			seen[e.KeyID] = time.Now()
		}
		cursor = page.Next
	}
	wg.Wait()
	close(acked)
	n := 0
	var worst time.Duration
	for r := range acked {
		n++
		got, ok := seen[r.id]
		if !ok {
			t.Fatalf("revocation of %s acknowledged but never on the feed", r.id)
		}
		// The feed reader may see the event before the writer's goroutine
		// records its acknowledgement; only lateness counts.
		if d := got.Sub(r.at); d > worst {
			worst = d
		}
	}
	if n != 2*perReplica || len(seen) != n {
		t.Fatalf("acknowledged %d revocations, feed had %d", n, len(seen))
	}
	if worst > time.Second {
		t.Fatalf("a revocation reached the feed reader %v after its 204; want within 1s", worst)
	}
	t.Logf("%d revocations through two replicas, all on replica A's feed in order; slowest %v after its 204", n, worst)
}

// TestFreshCursorGoodOnEveryReplica: a cursor that replica A has just
// handed out, from a head replica B has not polled yet, is good at B at
// once. Only a cursor past the database's head is refused (410), so a
// sidecar whose requests land on different replicas never purges for
// nothing.
func TestFreshCursorGoodOnEveryReplica(t *testing.T) {
	db := pgtest.NewDatabase(t)
	master := masterKey(t)
	a := startReplica(t, db, master)
	b := startReplica(t, db, master, func(c *keyserver.Config) { c.FeedPoll = time.Hour }) // B hears of A's events late
	ctx := context.Background()
	owner := mustClient(t, a.URL, a.Bootstrap.OwnerToken)
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "fn", Kind: "cloud_function"})
	if err != nil {
		t.Fatal(err)
	}
	verifierA := mustClient(t, a.URL, app.VerifierToken)
	verifierB := mustClient(t, b.URL, app.VerifierToken)
	for i := range 5 {
		k, err := owner.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: fmt.Sprint("k", i), ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if err := owner.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		head, err := verifierA.EventsHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		page, err := verifierB.Events(ctx, head, 0)
		if err != nil || len(page.Events) != 0 || page.Next != head {
			t.Fatalf("A's fresh head %d at B: %+v, %v; want no events and the same head", head, page, err)
		}
		page, err = verifierB.Events(ctx, head-1, 0)
		if err != nil || len(page.Events) != 1 || page.Events[0].KeyID != k.ID {
			t.Fatalf("the revocation just before A's head, at B: %+v, %v", page, err)
		}
		if _, err := verifierB.Events(ctx, head+1, 0); !client.IsStatus(err, http.StatusGone) {
			t.Fatalf("a cursor past the head at B: %v; want 410", err)
		}
	}
}

// TestDatabaseOutage stops PostgreSQL under load and starts it again: readyz
// fails while it is away and recovers without a restart, every answer is a
// success or a clear 503, and nothing acknowledged is lost.
func TestDatabaseOutage(t *testing.T) {
	cluster := pgtest.StartCluster(t)
	srv := startReplica(t, cluster.URL, masterKey(t))
	ctx := context.Background()
	owner := mustClient(t, srv.URL, srv.Bootstrap.OwnerToken)
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "fn", Kind: "cloud_function"})
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Readyz(ctx); err != nil {
		t.Fatalf("readyz before the outage: %v", err)
	}

	var mu sync.Mutex
	created := map[string]string{} // key id -> plain key, acknowledged
	revokedIDs := map[string]bool{}
	// A revoke answered 503 may or may not have committed before the
	// connection dropped; either outcome is correct for those keys.
	revokeUnknown := map[string]bool{}
	unexpected := []error{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, err := owner.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: fmt.Sprintf("w%d-%d", w, i), ExpiresAt: time.Now().Add(time.Hour)})
				if err == nil && i%2 == 0 {
					err = owner.RevokeKey(ctx, k.ID)
					mu.Lock()
					created[k.ID] = k.PlainKey
					if err == nil {
						revokedIDs[k.ID] = true
					} else {
						revokeUnknown[k.ID] = true
					}
					mu.Unlock()
				} else if err == nil {
					mu.Lock()
					created[k.ID] = k.PlainKey
					mu.Unlock()
				}
				var apiErr *client.APIError
				if err != nil && !(errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	cluster.Stop()
	var readyErr error
	for i := 0; i < 50; i++ {
		if readyErr = owner.Readyz(ctx); readyErr != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if readyErr == nil {
		t.Fatal("readyz stayed ok with the database stopped")
	}
	time.Sleep(500 * time.Millisecond)
	cluster.Start()
	var recovered bool
	for i := 0; i < 200; i++ {
		if owner.Readyz(ctx) == nil {
			recovered = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !recovered {
		t.Fatal("readyz did not recover after the database came back")
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("%d answers were neither success nor 503, first: %v", len(unexpected), unexpected[0])
	}
	verifier := mustClient(t, srv.URL, app.VerifierToken)
	for id, plain := range created {
		v, err := verifier.Verify(ctx, plain)
		if err != nil {
			t.Fatal(err)
		}
		want := "VALID"
		if revokedIDs[id] {
			want = "REVOKED"
		}
		if revokeUnknown[id] && (v.Code == "VALID" || v.Code == "REVOKED") {
			continue
		}
		if string(v.Code) != want {
			t.Fatalf("acknowledged key %s verifies %s, want %s", id, v.Code, want)
		}
	}
	if len(created) < 10 {
		t.Fatalf("only %d keys created around the outage; the load did not run", len(created))
	}
	t.Logf("%d keys and %d revocations acknowledged around the outage, all intact", len(created), len(revokedIDs))
}
