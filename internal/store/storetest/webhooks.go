package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func (f fixture) endpoint(t *testing.T, events ...string) store.WebhookEndpoint {
	t.Helper()
	e := store.WebhookEndpoint{ID: id("whk"), OrgID: f.org.ID, URL: "https://hooks.example.com/" + id("p"), Events: events, Enabled: true, CreatedAt: t0, CreatedBy: f.owner.ID}
	sec := store.WebhookSecret{ID: id("whs"), EndpointID: e.ID, Ciphertext: []byte("sealed " + e.ID), CreatedAt: t0}
	if err := f.s.CreateWebhookEndpoint(context.Background(), e, sec); err != nil {
		t.Fatal(err)
	}
	return e
}

func claim(t *testing.T, s *store.Store, now time.Time) []store.WebhookMessage {
	t.Helper()
	msgs, err := s.ClaimWebhookMessages(context.Background(), now, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func types(msgs []store.WebhookMessage) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.EndpointID+" "+m.Type)
	}
	slices.Sort(out)
	return out
}

// testWebhookQueue: a change queues, in its own transaction, one message
// per enabled endpoint of its organization whose events match; each
// endpoint's messages are claimed one at a time, in order, by one claimer;
// a failure waits for its retry, and a failure for good disables the
// endpoint with its reason. Another organization's endpoints hear nothing,
// and no payload holds a key's hash.
func testWebhookQueue(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f, other := setup(t, s), setup(t, s)
	only := f.endpoint(t, "key.created", "key.revoked")
	all := f.endpoint(t, "*")
	foreign := other.endpoint(t, "*")
	k := f.key(t, f.app.ID, f.owner.ID, "ci", t0.Add(time.Hour))
	if _, err := s.RevokeKey(ctx, f.org.ID, k.ID, f.owner.ID, true, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteApp(ctx, f.org.ID, f.app.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	first := claim(t, s, t0)
	want := []string{all.ID + " key.created", only.ID + " key.created"}
	slices.Sort(want)
	if got := types(first); !slices.Equal(got, want) {
		t.Fatalf("first claim = %v; want %v", got, want)
	}
	if again := claim(t, s, t0); len(again) != 0 {
		t.Fatalf("claimed while leased or behind a pending message: %v", types(again))
	}
	for _, m := range first {
		if strings.Contains(string(m.Payload), k.Hash) || m.URL == "" || !strings.HasPrefix(m.ID, "msg_") {
			t.Fatalf("message %+v", m)
		}
		var p struct {
			Type string
			Data map[string]any
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Type != "key.created" || p.Data["key_id"] != k.ID || p.Data["key_name"] != "ci" || p.Data["app_name"] != "fn" {
			t.Fatalf("payload %s (%v)", m.Payload, err)
		}
		if err := s.FinishWebhookAttempt(ctx, m.ID, store.WebhookAttempt{At: t0, Delivered: true, Status: 204}); err != nil {
			t.Fatal(err)
		}
	}
	// all: key.revoked, then key.orphaned? (no: the key was revoked), then app.deleted.
	var seen []string
	for range 5 {
		msgs := claim(t, s, t0)
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			seen = append(seen, m.EndpointID+" "+m.Type)
			if err := s.FinishWebhookAttempt(ctx, m.ID, store.WebhookAttempt{At: t0, Delivered: true, Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want = []string{only.ID + " key.revoked", all.ID + " key.revoked", all.ID + " app.deleted"}
	if got := slices.DeleteFunc(slices.Clone(seen), func(s string) bool { return strings.HasPrefix(s, only.ID) }); !slices.Equal(got, want[1:]) {
		t.Fatalf("all's messages after key.created: %v; want %v", got, want[1:])
	}
	if !slices.Contains(seen, want[0]) {
		t.Fatalf("only's messages: %v", seen)
	}
	if msgs, err := s.ListWebhookMessages(ctx, other.org.ID, foreign.ID, 10); err != nil || len(msgs) != 0 {
		t.Fatalf("another organization's endpoint got %v, %v", msgs, err)
	}
	if _, err := s.GetWebhookEndpoint(ctx, other.org.ID, all.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another organization read an endpoint: %v", err)
	}

	// A failure waits for its retry and keeps its webhook-id; a failure
	// for good disables the endpoint, which then queues nothing.
	app2 := store.App{ID: id("app"), OrgID: f.org.ID, Name: "fn2", Kind: "cloud_function", VerifierHash: id("ver"), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateApp(ctx, app2); err != nil {
		t.Fatal(err)
	}
	f.key(t, app2.ID, f.owner.ID, "y", t0.Add(time.Hour))
	msgs := claim(t, s, t0)
	if len(msgs) != 2 {
		t.Fatalf("claimed %v", types(msgs))
	}
	var failing store.WebhookMessage
	for _, m := range msgs {
		a := store.WebhookAttempt{At: t0, Delivered: true, Status: 200}
		if m.EndpointID == only.ID {
			failing = m
			next := t0.Add(5 * time.Second)
			a = store.WebhookAttempt{At: t0, Status: 500, Error: "HTTP 500", Latency: 3 * time.Millisecond, Next: &next}
		}
		if err := s.FinishWebhookAttempt(ctx, m.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	if got := claim(t, s, t0.Add(4*time.Second)); len(got) != 0 {
		t.Fatalf("claimed before the retry was due: %v", types(got))
	}
	retry := claim(t, s, t0.Add(5*time.Second))
	if len(retry) != 1 || retry[0].ID != failing.ID || retry[0].Attempts != 1 || retry[0].LastStatus != 500 || retry[0].LastLatency != 3*time.Millisecond {
		t.Fatalf("retry claimed %+v; want %s again", retry, failing.ID)
	}
	if err := s.FinishWebhookAttempt(ctx, failing.ID, store.WebhookAttempt{At: t0.Add(5 * time.Second), Status: 0, Error: "timeout", DisableReason: "failing for 24h"}); err != nil {
		t.Fatal(err)
	}
	ep, err := s.GetWebhookEndpoint(ctx, f.org.ID, only.ID)
	if err != nil || ep.Enabled || ep.DisabledReason != "failing for 24h" {
		t.Fatalf("endpoint after failing for good: %+v, %v", ep, err)
	}
	log, err := s.ListWebhookMessages(ctx, f.org.ID, only.ID, 10)
	if err != nil || len(log) != 3 || log[0].Status != store.WebhookFailed || log[0].Attempts != 2 {
		t.Fatalf("delivery log %+v, %v", log, err)
	}
	f.key(t, app2.ID, f.owner.ID, "z", t0.Add(time.Hour))
	got := claim(t, s, t0.Add(time.Minute))
	if len(got) != 1 || got[0].EndpointID != all.ID {
		t.Fatalf("a disabled endpoint was queued for: %v", types(got))
	}
	if err := s.FinishWebhookAttempt(ctx, got[0].ID, store.WebhookAttempt{At: t0, Delivered: true, Status: 200}); err != nil {
		t.Fatal(err)
	}
	// A retry by hand puts the message back, same id.
	if err := s.RetryWebhookMessage(ctx, other.org.ID, only.ID, failing.ID, other.owner.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another organization retried a message: %v", err)
	}
	if err := s.RetryWebhookMessage(ctx, f.org.ID, only.ID, failing.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	ep.Enabled, ep.DisabledReason = true, ""
	if err := s.UpdateWebhookEndpoint(ctx, ep, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, t0.Add(2*time.Minute)); len(got) != 1 || got[0].ID != failing.ID {
		t.Fatalf("after a retry by hand claimed %v", types(got))
	}
}

// testWebhookSecretRotation: after a rotation the previous secret signs
// until the overlap ends; a second rotation retires the oldest at once.
func testWebhookSecretRotation(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	e := f.endpoint(t, "*")
	rotate := func(at time.Time) string {
		sec := store.WebhookSecret{ID: id("whs"), EndpointID: e.ID, Ciphertext: []byte("sealed"), CreatedAt: at}
		if err := s.RotateWebhookSecret(ctx, f.org.ID, sec, at.Add(24*time.Hour), f.owner.ID); err != nil {
			t.Fatal(err)
		}
		return sec.ID
	}
	second := rotate(t0.Add(time.Hour))
	if secs, err := s.WebhookSecrets(ctx, e.ID, t0.Add(2*time.Hour)); err != nil || len(secs) != 2 || secs[0].ID != second || secs[0].ExpiresAt != nil || secs[1].ExpiresAt == nil {
		t.Fatalf("secrets in the overlap: %+v, %v", secs, err)
	}
	if secs, err := s.WebhookSecrets(ctx, e.ID, t0.Add(25*time.Hour)); err != nil || len(secs) != 1 || secs[0].ID != second {
		t.Fatalf("secrets after the overlap: %+v, %v", secs, err)
	}
	third := rotate(t0.Add(3 * time.Hour))
	if secs, err := s.WebhookSecrets(ctx, e.ID, t0.Add(4*time.Hour)); err != nil || len(secs) != 2 || secs[0].ID != third || secs[1].ID != second {
		t.Fatalf("secrets after two rotations: %+v, %v", secs, err)
	}
	other := setup(t, s)
	sec := store.WebhookSecret{ID: id("whs"), EndpointID: e.ID, Ciphertext: []byte("sealed"), CreatedAt: t0}
	if err := s.RotateWebhookSecret(ctx, other.org.ID, sec, t0, other.owner.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another organization rotated a secret: %v", err)
	}
	if err := s.DeleteWebhookEndpoint(ctx, f.org.ID, e.ID, f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	if secs, err := s.WebhookSecrets(ctx, e.ID, t0); err != nil || len(secs) != 0 {
		t.Fatalf("a deleted endpoint's secrets remain: %v, %v", secs, err)
	}
}

// testWebhookExpiryNotices: a key hears of each threshold once, however
// many replicas look at once and however often.
func testWebhookExpiryNotices(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	f.endpoint(t, "key.revoked") // hears of no expiry: no notice is spent on it
	soon := f.key(t, f.app.ID, f.owner.ID, "soon", t0.Add(6*24*time.Hour))
	if n, err := s.QueueExpiryNotices(ctx, "key.expiring", "7d", t0.Add(24*time.Hour), t0.Add(7*24*time.Hour), t0, 100); err != nil || n != 0 {
		t.Fatalf("queued %d (%v) for an organization whose endpoints do not ask for key.expiring", n, err)
	}
	e := f.endpoint(t, "key.expiring")
	f.key(t, f.app.ID, f.owner.ID, "later", t0.Add(30*24*time.Hour))
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.QueueExpiryNotices(ctx, "key.expiring", "7d", t0.Add(24*time.Hour), t0.Add(7*24*time.Hour), t0, 100)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n, err := s.QueueExpiryNotices(ctx, "key.expiring", "7d", t0.Add(24*time.Hour), t0.Add(7*24*time.Hour), t0, 100); err != nil || total+n != 1 {
		t.Fatalf("queued %d then %d (%v); want 1 in all", total, n, err)
	}
	msgs, err := s.ListWebhookMessages(ctx, f.org.ID, e.ID, 10)
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].Payload), soon.ID) || !strings.Contains(string(msgs[0].Payload), `"threshold":"7d"`) {
		t.Fatalf("messages %+v, %v", msgs, err)
	}
}

// testWebhookConcurrentClaims: claimers side by side never take the same
// message.
func testWebhookConcurrentClaims(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	var eps []store.WebhookEndpoint
	for range 20 {
		eps = append(eps, f.endpoint(t, "*"))
	}
	f.key(t, f.app.ID, f.owner.ID, "k", t0.Add(time.Hour))
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				msgs, err := s.ClaimWebhookMessages(ctx, t0, time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, m := range msgs {
					got[m.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != len(eps) {
		t.Fatalf("claimed %d messages; want %d", len(got), len(eps))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("message %s claimed %d times", id, n)
		}
	}
}
