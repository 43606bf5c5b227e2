package httpapi_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/webhook/webhooktest"
)

// withWebhooks lets deliveries reach 127.0.0.1 alone, and looks at the
// queue often, so tests wait little.
func withWebhooks(allowLoopback bool) servicetest.Option {
	return servicetest.WithConfig(func(k *keyserver.Config) {
		if allowLoopback {
			k.WebhooksAllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		}
		k.WebhookPoll = 20 * time.Millisecond
		k.WebhookExpiryEvery = 20 * time.Millisecond
	})
}

// A member, a sidecar and another organization's owner can neither
// register, read, change, rotate, test nor delete an organization's
// webhooks, nor see its deliveries; the signing secret is shown once.
func TestWebhooksOnlyForOwnersOfTheOrganization(t *testing.T) {
	w := newWorld(t, withWebhooks(true))
	rcv := webhooktest.NewReceiver(t, nil, nil)
	body := map[string]any{"url": rcv.URL, "events": []string{"*"}, "description": "ops"}
	w.do("POST", "/v1/webhooks", w.memTok, body).WantError(http.StatusForbidden, "")
	w.do("POST", "/v1/webhooks", w.appA.VerifierToken, body).WantError(http.StatusForbidden, "")
	w.do("GET", "/v1/webhooks", w.memTok, nil).WantError(http.StatusForbidden, "")

	created, err := w.aura.CreateWebhook(ctx(t), client.CreateWebhookRequest{URL: rcv.URL, Events: []string{"*"}, Description: "ops"})
	must(t, err)
	if !strings.HasPrefix(created.Secret, "whsec_") || created.ID == "" || !created.Enabled {
		t.Fatalf("create answered %+v", created)
	}
	got, err := w.owner.GetWebhook(ctx(t), created.ID)
	must(t, err)
	if got.Secret != "" || got.URL != rcv.URL {
		t.Fatalf("get answered %+v: the secret is shown once", got)
	}
	admin := w.client(w.svc.AdminToken)
	org2, err := admin.CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "other@example.com"})
	must(t, err)
	other := org2.Owner.Token
	base := "/v1/webhooks/" + created.ID
	for _, tok := range []string{w.memTok, w.appA.VerifierToken} {
		w.do("GET", base, tok, nil).WantError(http.StatusForbidden, "")
		w.do("PATCH", base, tok, map[string]any{"enabled": false}).WantError(http.StatusForbidden, "")
		w.do("DELETE", base, tok, nil).WantError(http.StatusForbidden, "")
		w.do("POST", base+"/rotate-secret", tok, nil).WantError(http.StatusForbidden, "")
		w.do("POST", base+"/test", tok, nil).WantError(http.StatusForbidden, "")
		w.do("GET", base+"/deliveries", tok, nil).WantError(http.StatusForbidden, "")
	}
	w.do("GET", base, other, nil).WantError(http.StatusNotFound, "")
	w.do("PATCH", base, other, map[string]any{"url": "https://evil.example.com/"}).WantError(http.StatusNotFound, "")
	w.do("DELETE", base, other, nil).WantError(http.StatusNotFound, "")
	w.do("POST", base+"/rotate-secret", other, nil).WantError(http.StatusNotFound, "")
	w.do("POST", base+"/test", other, nil).WantError(http.StatusNotFound, "")
	w.do("GET", base+"/deliveries", other, nil).WantError(http.StatusNotFound, "")
	var list struct{ Webhooks []map[string]any }
	w.do("GET", "/v1/webhooks", other, nil).WantStatus(http.StatusOK).Into(&list)
	if len(list.Webhooks) != 0 {
		t.Fatalf("another organization lists %v", list.Webhooks)
	}
	// The other organization's keys are not told to this endpoint.
	oc := w.client(other)
	app, err := oc.CreateApp(ctx(t), client.CreateAppRequest{Name: "theirs", Kind: client.KindCloudFunction})
	must(t, err)
	_, err = oc.CreateKey(ctx(t), app.ID, client.CreateKeyRequest{Name: "theirs", ExpiresAt: w.clock.Now().Add(time.Hour)})
	must(t, err)
	must(t, w.owner.SendTestWebhook(ctx(t), created.ID))
	eventually(t, "the test event arrives", func() bool { return len(rcv.Requests()) > 0 })
	for _, r := range rcv.Requests() {
		if strings.Contains(string(r.Body), app.ID) {
			t.Fatalf("another organization's event reached this endpoint: %s", r.Body)
		}
	}
	ds, err := w.owner.ListWebhookDeliveries(ctx(t), created.ID)
	must(t, err)
	if len(ds) != 1 || ds[0].Type != "webhook.test" {
		t.Fatalf("deliveries %+v", ds)
	}
	w.do("POST", base+"/deliveries/"+ds[0].ID+"/retry", other, nil).WantError(http.StatusNotFound, "")
	w.do("POST", base+"/deliveries/"+ds[0].ID+"/retry", w.memTok, nil).WantError(http.StatusForbidden, "")

	// Bad input.
	for _, bad := range []map[string]any{
		{"url": "ftp://example.com/", "events": []string{"*"}},
		{"url": "https://user:pw@example.com/", "events": []string{"*"}},
		{"url": "https://example.com/", "events": []string{}},
		{"url": "https://example.com/", "events": []string{"key.stolen"}},
		{"url": "https://example.com/", "events": []string{"*", "key.created"}},
		{"url": "https://example.com/", "events": []string{"*"}, "description": strings.Repeat("x", 501)},
	} {
		w.do("POST", "/v1/webhooks", w.ownerTok, bad).WantError(http.StatusUnprocessableEntity, "")
	}

	// Audited.
	must(t, w.owner.DeleteWebhook(ctx(t), created.ID))
	audit := w.do("GET", "/v1/audit?limit=1000", w.ownerTok, nil).WantStatus(http.StatusOK)
	for _, want := range []string{"webhook.create", "webhook.test", "webhook.delete"} {
		if !strings.Contains(string(audit.Body), `"`+want+`"`) {
			t.Errorf("the audit log has no %s record", want)
		}
	}
	if strings.Contains(string(audit.Body), "/hook") {
		t.Error("the audit log repeats an endpoint's path, which may be its receiver's secret")
	}
}

// Without --webhooks-allow-private, no endpoint may name the metadata
// service, a private or a loopback address, and a name that resolves to
// one is refused when the delivery connects.
func TestWebhookSSRFRefused(t *testing.T) {
	w := newWorld(t, withWebhooks(false))
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]:8080/", "http://127.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"} {
		w.do("POST", "/v1/webhooks", w.ownerTok, map[string]any{"url": u, "events": []string{"*"}}).WantError(http.StatusUnprocessableEntity, "")
	}
	rcv := webhooktest.NewReceiver(t, nil, nil)
	sneaky := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1) // resolves to 127.0.0.1
	hook, err := w.owner.CreateWebhook(ctx(t), client.CreateWebhookRequest{URL: sneaky, Events: []string{"*"}})
	must(t, err)
	must(t, w.owner.SendTestWebhook(ctx(t), hook.ID))
	var ds []client.WebhookDelivery
	eventually(t, "the attempt is recorded", func() bool {
		ds, err = w.owner.ListWebhookDeliveries(ctx(t), hook.ID)
		must(t, err)
		return len(ds) == 1 && ds[0].Attempts > 0
	})
	if ds[0].Status != "pending" || ds[0].LastResponseCode != 0 || !strings.Contains(ds[0].LastError, "not public") {
		t.Fatalf("delivery to a name of 127.0.0.1: %+v", ds[0])
	}
	if n := len(rcv.Requests()); n != 0 {
		t.Fatalf("the receiver behind localhost got %d requests", n)
	}
}

// A receiver that fails three times, then succeeds, gets the event once
// more, with the same webhook-id every time; the retries wait 5 s, 30 s
// and 2 min (on the service's clock).
func TestWebhookRetriesKeepTheWebhookID(t *testing.T) {
	w := newWorld(t, withWebhooks(true))
	rcv := webhooktest.NewReceiver(t, nil, func(n int, _ webhooktest.Request) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	hook, err := w.owner.CreateWebhook(ctx(t), client.CreateWebhookRequest{URL: rcv.URL, Events: []string{"key.created"}})
	must(t, err)
	w.createKey(w.owner, w.appA.ID, "ci")
	for i, wait := range []time.Duration{0, 6 * time.Second, 35 * time.Second, 2*time.Minute + 15*time.Second} {
		w.clock.Advance(wait)
		eventually(t, "attempt arrives", func() bool { return len(rcv.Requests()) >= i+1 })
		if i < 3 {
			eventually(t, "attempt recorded", func() bool {
				ds, err := w.owner.ListWebhookDeliveries(ctx(t), hook.ID)
				must(t, err)
				return len(ds) == 1 && ds[0].Attempts == i+1
			})
			if n := len(rcv.Requests()); n != i+1 {
				t.Fatalf("after attempt %d the receiver got %d requests: a retry came before it was due", i+1, n)
			}
		}
	}
	var ds []client.WebhookDelivery
	eventually(t, "delivered", func() bool {
		ds, err = w.owner.ListWebhookDeliveries(ctx(t), hook.ID)
		must(t, err)
		return len(ds) == 1 && ds[0].Status == "delivered"
	})
	if ds[0].Attempts != 4 || ds[0].LastResponseCode != 204 || ds[0].DeliveredAt == nil {
		t.Fatalf("delivery %+v", ds[0])
	}
	w.clock.Advance(2 * time.Hour)
	must(t, w.owner.SendTestWebhook(ctx(t), hook.ID)) // a later message flushes the queue
	eventually(t, "the test event arrives", func() bool { return len(rcv.Requests()) == 5 })
	reqs := rcv.Requests()
	id := reqs[0].Header.Get("webhook-id")
	for i, r := range reqs[:4] {
		if r.Header.Get("webhook-id") != id || string(r.Body) != string(reqs[0].Body) {
			t.Fatalf("attempt %d: webhook-id %q body %s; want %q and the first body", i+1, r.Header.Get("webhook-id"), r.Body, id)
		}
	}
	if reqs[4].Header.Get("webhook-id") == id {
		t.Fatal("another message reused the webhook-id")
	}
}

// A webhook's signing secrets, current and previous, reach neither the
// logs (at debug level), nor the database files, nor the audit log, nor a
// delivery; only the create and rotate answers show them.
func TestWebhookSecretsNeverInClear(t *testing.T) {
	logs := &servicetest.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := newWorld(t, withWebhooks(true), servicetest.WithLogger(logger))
	rcv := webhooktest.NewReceiver(t, nil, nil)
	hook, err := w.owner.CreateWebhook(ctx(t), client.CreateWebhookRequest{URL: rcv.URL, Events: []string{"*"}})
	must(t, err)
	rotated, err := w.owner.RotateWebhookSecret(ctx(t), hook.ID)
	must(t, err)
	k := w.createKey(w.owner, w.appA.ID, "ci")
	must(t, w.owner.SendTestWebhook(ctx(t), hook.ID))
	eventually(t, "deliveries", func() bool { return len(rcv.Requests()) == 2 })
	list := w.do("GET", "/v1/webhooks", w.ownerTok, nil).WantStatus(http.StatusOK)
	audit := w.do("GET", "/v1/audit?limit=1000", w.ownerTok, nil).WantStatus(http.StatusOK)
	w.svc.Stop()
	var disk []byte
	for _, name := range []string{"appkeys.db", "appkeys.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(w.svc.DataDir, name))
		disk = append(disk, b...)
	}
	if os.Getenv(servicetest.EnvStore) != "postgres" && !bytes.Contains(disk, []byte(hook.ID)) {
		t.Fatal("read no database")
	}
	var sent []byte
	for _, r := range rcv.Requests() {
		sent = append(sent, r.Body...)
		sent = append(sent, fmt.Sprint(r.Header)...)
	}
	for _, s := range []string{hook.Secret, rotated.Secret, k.PlainKey} {
		for _, probe := range []string{s, s[6:]} {
			for where, b := range map[string][]byte{"log": []byte(logs.String()), "database": disk, "list": list.Body, "audit": audit.Body, "delivery": sent} {
				if bytes.Contains(b, []byte(probe)) {
					t.Errorf("the %s holds a secret %.10s…", where, s)
				}
			}
		}
	}
}
