package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/leaktest"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/webhook/webhooktest"
)

// A receiver on 127.0.0.1 gets every event type, in order, each signed so
// that the Standard Webhooks reference library (npm standardwebhooks, run
// by node) accepts it: with the first secret, with both during a
// rotation's overlap, with the new one after. key.expiring comes 7 days
// and 1 day before a key's expiry and key.expired after it, once each,
// across a restart, on the service's clock. No payload holds a key or a
// secret.
func TestWebhooksTellEveryEventInOrderSigned(t *testing.T) {
	gh := leaktest.NewSigner()
	leakKeys := leaktest.NewKeyServer(gh)
	t.Cleanup(leakKeys.Close)
	w := newWorld(t, withWebhooks(true), servicetest.WithConfig(func(k *keyserver.Config) {
		k.LeakKeysURL, k.LeakAction = leakKeys.URL, "notify"
	}))
	rcv := webhooktest.NewReceiver(t, w.clock.Now, nil)
	hook, err := w.owner.CreateWebhook(ctx(t), client.CreateWebhookRequest{URL: rcv.URL, Events: []string{"*"}})
	must(t, err)
	type event struct{ typ, id string }
	var want []event
	var secrets []string // must appear in no delivery
	arrived := func(what string) {
		t.Helper()
		eventually(t, what, func() bool { return len(rcv.Requests()) >= len(want) })
		// The test moves the service's clock by hours next: only once
		// every delivery is recorded, or a message whose 20 s lease ran
		// out on that clock while its answer was being recorded would be
		// claimed and sent again (as it would be after 20 real seconds).
		eventually(t, what+" recorded", func() bool {
			ds, err := w.owner.ListWebhookDeliveries(ctx(t), hook.ID)
			if err != nil || len(ds) < len(want) {
				return false
			}
			for _, d := range ds {
				if d.DeliveredAt == nil {
					return false
				}
			}
			return true
		})
	}
	key := func(by *client.Client, app, name string, expires time.Time) *client.CreatedKey {
		k, err := by.CreateKey(ctx(t), app, client.CreateKeyRequest{Name: name, ExpiresAt: expires})
		must(t, err)
		secrets = append(secrets, k.PlainKey)
		want = append(want, event{"key.created", k.ID})
		return k
	}

	k1 := key(w.owner, w.appA.ID, "ci", w.clock.Now().Add(30*24*time.Hour))
	rolled, err := w.owner.RollKey(ctx(t), k1.ID, client.RollKeyRequest{ExpiresAt: w.clock.Now().Add(30 * 24 * time.Hour), Overlap: "1h"})
	must(t, err)
	secrets = append(secrets, rolled.PlainKey)
	want = append(want, event{"key.rolled", k1.ID}, event{"key.created", rolled.Key.ID})
	must(t, w.owner.RevokeKey(ctx(t), rolled.Key.ID))
	want = append(want, event{"key.revoked", rolled.Key.ID})
	leaky := key(w.owner, w.appA.ID, "leaky", w.clock.Now().Add(30*24*time.Hour))
	status, _, err := leaktest.Post(ctx(t), http.DefaultClient, w.svc.URL+"/v1/leaks/github", gh, leaktest.Body(leaky.PlainKey))
	if err != nil || status != http.StatusOK {
		t.Fatalf("leak report: %d %v", status, err)
	}
	want = append(want, event{"key.leaked", leaky.ID})
	arrived("the first events")

	rotated, err := w.owner.RotateWebhookSecret(ctx(t), hook.ID)
	must(t, err)
	secrets = append(secrets, hook.Secret, rotated.Secret)
	k4 := key(w.member, w.appB.ID, "member's", w.clock.Now().Add(30*24*time.Hour))
	must(t, w.owner.DeleteUser(ctx(t), w.memberID))
	want = append(want, event{"key.orphaned", k4.ID}, event{"user.deleted", w.memberID})
	k5 := key(w.owner, w.appB.ID, "b", w.clock.Now().Add(30*24*time.Hour))
	must(t, w.owner.DeleteApp(ctx(t), w.appB.ID))
	want = append(want, event{"key.orphaned", k5.ID}, event{"app.deleted", w.appB.ID})
	short := key(w.owner, w.appA.ID, "short", w.clock.Now().Add(8*24*time.Hour))
	arrived("the changes")

	w.clock.Advance(25 * time.Hour) // 6 days 23 hours left; the old secret's overlap is over
	want = append(want, event{"key.expiring", short.ID})
	arrived("key.expiring 7d")
	w.svc.Restart()
	w.clock.Advance(time.Hour) // still within 7 days: nothing new
	must(t, w.owner.SendTestWebhook(ctx(t), hook.ID))
	want = append(want, event{"webhook.test", ""})
	arrived("the test event after the restart")
	w.clock.Advance(5*24*time.Hour + 23*time.Hour) // 23 hours left
	want = append(want, event{"key.expiring", short.ID})
	arrived("key.expiring 1d")
	w.clock.Advance(24 * time.Hour)
	want = append(want, event{"key.expired", short.ID})
	arrived("key.expired")
	w.clock.Advance(time.Hour)
	must(t, w.owner.SendTestWebhook(ctx(t), hook.ID)) // and nothing came between
	want = append(want, event{"webhook.test", ""})
	arrived("the last test event")

	reqs := rcv.Requests()
	var got []event
	var thresholds []string
	ids := map[string]bool{}
	var first, overlap, after []webhooktest.Request
	for i, r := range reqs {
		var p struct {
			Type      string
			Timestamp time.Time
			Data      map[string]any
		}
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatalf("delivery %d: %s: %v", i+1, r.Body, err)
		}
		id, _ := p.Data["key_id"].(string)
		switch p.Type {
		case "user.deleted":
			id, _ = p.Data["user_id"].(string)
		case "app.deleted":
			id, _ = p.Data["app_id"].(string)
		case "key.expiring":
			thresholds = append(thresholds, fmt.Sprint(p.Data["threshold"]))
		}
		got = append(got, event{p.Type, id})
		if ids[r.Header.Get("webhook-id")] || !strings.HasPrefix(r.Header.Get("webhook-id"), "msg_") {
			t.Fatalf("delivery %d: webhook-id %q is not a new message's", i+1, r.Header.Get("webhook-id"))
		}
		ids[r.Header.Get("webhook-id")] = true
		for _, s := range secrets {
			if strings.Contains(string(r.Body), s) || strings.Contains(string(r.Body), s[6:]) {
				t.Fatalf("delivery %d holds a key or secret: %s", i+1, r.Body)
			}
		}
		switch n := len(strings.Fields(r.Header.Get("webhook-signature"))); {
		case n == 2:
			overlap = append(overlap, r)
		case n == 1 && len(overlap) == 0:
			first = append(first, r)
		case n == 1:
			after = append(after, r)
		default:
			t.Fatalf("delivery %d: webhook-signature %q", i+1, r.Header.Get("webhook-signature"))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the receiver got, in order:\n%v\nwant:\n%v", got, want)
	}
	if !slices.Equal(thresholds, []string{"7d", "1d"}) {
		t.Fatalf("key.expiring thresholds %v; want 7d then 1d", thresholds)
	}
	if len(first) != 6 || len(overlap) != 7 || len(after) != 5 {
		t.Fatalf("signed with the first secret alone: %d, with both: %d, with the new one alone: %d", len(first), len(overlap), len(after))
	}
	webhooktest.Verify(t, hook.Secret, append(first, overlap...))
	webhooktest.Verify(t, rotated.Secret, append(overlap, after...))
}
