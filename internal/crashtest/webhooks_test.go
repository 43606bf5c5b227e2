package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/store/pgtest"
	"github.com/appkeys/appkeys/internal/webhook/webhooktest"
)

// webhookEvents is how many events the replicas deliver.
const webhookEvents = 1000

// Two replicas on one PostgreSQL database deliver 1,000 key.created
// events to one receiver while one replica is killed with kill -9 half way:
// every event arrives (none lost), each was queued once (one webhook-id per
// event, none doubled), and they arrive in the order the keys were made.
// A message in flight at the kill may be sent again, with its webhook-id,
// by the other replica once its lease ends (at least once); the test
// allows that one, and says so.
func TestWebhooksTwoReplicasKillNine(t *testing.T) {
	pgtest.Require(t)
	db := pgtest.NewDatabase(t)
	allow := []string{"--webhooks-allow-private", "127.0.0.1/32"}
	a := startService(t, t.TempDir(), db, "replica-a", allow...)
	b := startService(t, t.TempDir(), db, "replica-b", allow...)
	rcv := webhooktest.NewReceiver(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ca, err := client.New(a.URL, ownerToken, client.WithTimeout(20*time.Second))
	must(t, err)
	cb, err := client.New(b.URL, ownerToken, client.WithTimeout(20*time.Second))
	must(t, err)
	hook, err := ca.CreateWebhook(ctx, client.CreateWebhookRequest{URL: rcv.URL, Events: []string{"key.created"}})
	must(t, err)
	app, err := cb.CreateApp(ctx, client.CreateAppRequest{Name: "hooks", Kind: client.KindCloudFunction})
	must(t, err)

	// Keys are made one after another, through replica B (A dies), so
	// their events are in a known order.
	order := make([]string, 0, webhookEvents)
	var made sync.WaitGroup
	made.Add(1)
	go func() {
		defer made.Done()
		for i := range webhookEvents {
			k, err := cb.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: fmt.Sprintf("k%04d", i), ExpiresAt: time.Now().Add(30 * 24 * time.Hour)})
			if err != nil {
				t.Errorf("create key %d: %v", i, err)
				return
			}
			order = append(order, k.ID)
		}
	}()
	waitFor(t, "half the events delivered", 3*time.Minute, func() bool { return len(rcv.Requests()) >= webhookEvents/2 })
	deliveredByA := delivered(t, a.URL)
	a.crash()
	t.Logf("replica A killed after %d deliveries (A had made %v of them)", len(rcv.Requests()), deliveredByA)
	made.Wait()
	if t.Failed() {
		t.FailNow()
	}
	distinct := func() map[string]int {
		ids := map[string]int{}
		for _, r := range rcv.Requests() {
			ids[r.Header.Get("webhook-id")]++
		}
		return ids
	}
	waitFor(t, "every event delivered", 3*time.Minute, func() bool { return len(distinct()) >= webhookEvents })

	reqs := rcv.Requests()
	perKey := map[string]map[string]bool{} // key id → webhook-ids
	var firstOrder []string
	seen := map[string]bool{}
	again := 0
	for _, r := range reqs {
		var p struct {
			Data struct {
				KeyID string `json:"key_id"`
			}
		}
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatalf("delivery %s: %v", r.Body, err)
		}
		id := r.Header.Get("webhook-id")
		if perKey[p.Data.KeyID] == nil {
			perKey[p.Data.KeyID] = map[string]bool{}
		}
		perKey[p.Data.KeyID][id] = true
		if seen[id] {
			again++
			continue
		}
		seen[id] = true
		firstOrder = append(firstOrder, p.Data.KeyID)
	}
	for _, k := range order {
		switch n := len(perKey[k]); {
		case n == 0:
			t.Errorf("key %s: its key.created never arrived (lost)", k)
		case n > 1:
			t.Errorf("key %s: key.created arrived as %d messages (doubled)", k, n)
		}
	}
	if len(perKey) != webhookEvents {
		t.Errorf("events of %d keys arrived; want %d", len(perKey), webhookEvents)
	}
	for i := range min(len(order), len(firstOrder)) {
		if order[i] != firstOrder[i] {
			t.Fatalf("delivery %d is of key %s; want %s: out of order", i+1, firstOrder[i], order[i])
		}
	}
	if again > 1 {
		t.Errorf("%d deliveries were sent again; at most the one in flight at the kill may be", again)
	}
	ds, err := cb.ListWebhookDeliveries(ctx, hook.ID)
	must(t, err)
	for _, d := range ds {
		if d.Status != "delivered" {
			t.Errorf("delivery %s: %s", d.ID, d.Status)
		}
	}
	t.Logf("%d events, %d deliveries (%d sent again after the kill); replica B delivered %v", webhookEvents, len(reqs), again, delivered(t, b.URL))
	webhooktest.Verify(t, hook.Secret, reqs[:10])
}

var deliveredMetric = regexp.MustCompile(`(?m)^appkeys_webhook_deliveries_total\{result="delivered"\} (\d+)`)

// delivered reads a replica's count of deliveries from its metrics.
func delivered(t *testing.T, url string) int {
	t.Helper()
	c, err := client.New(url, "", client.WithTimeout(10*time.Second))
	must(t, err)
	text, err := c.Metrics(context.Background())
	must(t, err)
	m := deliveredMetric.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no appkeys_webhook_deliveries_total in %s's metrics", url)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened within %v: %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
