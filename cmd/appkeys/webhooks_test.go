package main

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/webhook/webhooktest"
)

// appkeys webhooks: create (the secret once), list, show, test, deliveries,
// retry, update, rotate-secret and delete, against a real service and a
// receiver on 127.0.0.1; a member is refused with one clear line.
func TestCLIWebhooks(t *testing.T) {
	svc := servicetest.Start(t, servicetest.WithConfig(func(c *keyserver.Config) {
		c.WebhooksAllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.WebhookPoll = 20 * time.Millisecond
	}))
	e := e2e{t: t, svc: svc}
	owner := svc.OwnerToken
	rcv := webhooktest.NewReceiver(t, nil, func(n int, _ webhooktest.Request) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})

	r := e.run(owner, "webhooks", "create", "--endpoint", rcv.URL, "--events", "key.revoked,key.leaked", "--description", "pager")
	secret := fieldOf(t, r.stdout, "SECRET")
	if !strings.HasPrefix(secret, "whsec_") || !strings.Contains(r.stdout, "will not be shown again") {
		t.Fatalf("webhooks create:\n%s", r.stdout)
	}
	id := fieldOf(t, r.stdout, "ID")
	var list struct{ Webhooks []client.Webhook }
	e.runJSON(owner, &list, "webhooks", "list")
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != id || list.Webhooks[0].Secret != "" || strings.Join(list.Webhooks[0].Events, ",") != "key.revoked,key.leaked" {
		t.Fatalf("webhooks list: %+v", list.Webhooks)
	}
	if r := e.run(owner, "webhooks", "list"); strings.Contains(r.stdout, secret) || !strings.Contains(r.stdout, "pager") {
		t.Fatalf("webhooks list:\n%s", r.stdout)
	}

	var member client.CreatedUser
	e.runJSON(owner, &member, "users", "create", "--email", "m@example.com", "--role", "member")
	if r := e.try(member.Token, "webhooks", "list"); r.err == nil || !strings.Contains(r.errLine(), "Owner") {
		t.Fatalf("a member listed webhooks: %q %v", r.stdout, r.err)
	}

	e.run(owner, "webhooks", "test", id)
	var ds struct{ Deliveries []client.WebhookDelivery }
	for range 1000 {
		e.runJSON(owner, &ds, "webhooks", "deliveries", id)
		if len(ds.Deliveries) == 1 && ds.Deliveries[0].Attempts == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ds.Deliveries) != 1 || ds.Deliveries[0].Status != "pending" || ds.Deliveries[0].LastResponseCode != 503 {
		t.Fatalf("after a 503: %+v", ds.Deliveries)
	}
	if r := e.run(owner, "webhooks", "deliveries", id); !strings.Contains(r.stdout, "webhook.test") || !strings.Contains(r.stdout, "503") {
		t.Fatalf("webhooks deliveries:\n%s", r.stdout)
	}
	e.run(owner, "webhooks", "retry", id, ds.Deliveries[0].ID) // now, not in 5 s
	for range 1000 {
		e.runJSON(owner, &ds, "webhooks", "deliveries", id)
		if ds.Deliveries[0].Status == "delivered" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ds.Deliveries[0].Status != "delivered" || ds.Deliveries[0].Attempts != 2 {
		t.Fatalf("after the retry: %+v", ds.Deliveries)
	}
	reqs := rcv.Requests()
	if len(reqs) != 2 || reqs[0].Header.Get("webhook-id") != reqs[1].Header.Get("webhook-id") {
		t.Fatalf("the receiver got %d requests", len(reqs))
	}
	webhooktest.Verify(t, secret, reqs)

	if r := e.run(owner, "webhooks", "update", id, "--disable"); fieldOf(t, r.stdout, "STATE") != "disabled" {
		t.Fatalf("webhooks update --disable:\n%s", r.stdout)
	}
	if r := e.try(owner, "webhooks", "test", id); r.err == nil || !strings.Contains(r.errLine(), "disabled") {
		t.Fatalf("a disabled webhook's test: %v", r.err)
	}
	if r := e.run(owner, "webhooks", "update", id, "--enable", "--events", "*"); fieldOf(t, r.stdout, "STATE") != "enabled" || fieldOf(t, r.stdout, "EVENTS") != "*" {
		t.Fatalf("webhooks update --enable:\n%s", r.stdout)
	}
	r = e.run(owner, "webhooks", "rotate-secret", id)
	if s := fieldOf(t, r.stdout, "SECRET"); !strings.HasPrefix(s, "whsec_") || s == secret {
		t.Fatalf("webhooks rotate-secret:\n%s", r.stdout)
	}
	e.run(owner, "webhooks", "delete", id, "--yes")
	if r := e.try(owner, "webhooks", "show", id); r.err == nil || !strings.Contains(r.errLine(), "not found") {
		t.Fatalf("show after delete: %v", r.err)
	}
}
