package console_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/webhook/webhooktest"
)

var webhookIDRE = regexp.MustCompile(`href="/webhooks/(whk_[0-9A-Za-z]+)"`)

// The Webhooks page: a member neither sees nor reaches it; an owner adds
// an endpoint (its secret shown once), sends a test event and reads the
// delivery log, and sees why the service disabled an endpoint whose
// receiver failed for 24 hours (on the service's clock), then retries.
func TestConsoleWebhooks(t *testing.T) {
	clock := servicetest.NewClock(time.Now())
	svc := startConsole(t, servicetest.WithClock(clock), servicetest.WithConfig(func(c *keyserver.Config) {
		c.WebhooksAllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.WebhookPoll = 20 * time.Millisecond
	}))
	var failing atomic.Bool
	failing.Store(true)
	rcv := webhooktest.NewReceiver(t, clock.Now, func(int, webhooktest.Request) int {
		if failing.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	owner, err := client.New(svc.URL, svc.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	member, err := owner.CreateUser(context.Background(), client.CreateUserRequest{Email: "m@example.com", Role: client.RoleMember})
	if err != nil {
		t.Fatal(err)
	}
	mb := newBrowserless(t, svc.URL)
	mb.login(member.Token)
	if _, page := mb.get("/"); strings.Contains(page, `href="/webhooks"`) {
		t.Error("a member's Container Service page links to Webhooks")
	}
	if code, _ := mb.get("/webhooks"); code != http.StatusForbidden {
		t.Errorf("a member's GET /webhooks = %d; want 403", code)
	}

	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	if _, page := b.get("/"); !strings.Contains(page, `href="/webhooks"`) {
		t.Fatal("the owner's Container Service page has no Webhooks link")
	}
	code, _, page := b.post("/webhooks", url.Values{"url": {"http://169.254.169.254/"}, "events": {"*"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "public address") {
		t.Fatalf("adding the metadata address = %d: %s", code, page)
	}
	code, _, page = b.post("/webhooks", url.Values{"url": {rcv.URL}, "events": {"key.revoked", "key.leaked"}, "description": {"pager"}})
	secret := regexp.MustCompile(`whsec_[0-9A-Za-z+/=]+`).FindString(page)
	if code != http.StatusCreated || secret == "" || !strings.Contains(page, "shown once") {
		t.Fatalf("add endpoint = %d: %s", code, page)
	}
	_, page = b.get("/webhooks")
	if strings.Contains(page, secret) || !strings.Contains(page, "pager") {
		t.Fatalf("the list shows the secret again, or not the endpoint: %s", page)
	}
	id := webhookIDRE.FindStringSubmatch(page)[1]
	if code, h, _ := b.post("/webhooks/"+id+"/test", nil); code != http.StatusSeeOther || h.Get("Location") != "/webhooks/"+id {
		t.Fatalf("Send test event = %d to %q", code, h.Get("Location"))
	}
	for n := 1; n < 60; n++ {
		// Attempt n is recorded; each failed attempt schedules the next
		// at most an hour and 10% later on the service's clock, and the
		// one after 24 hours disables the endpoint.
		deadline := time.Now().Add(15 * time.Second)
		for {
			ds, err := owner.ListWebhookDeliveries(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 1 && ds[0].Attempts >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("attempt %d was never recorded", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if h, err := owner.GetWebhook(context.Background(), id); err != nil || !h.Enabled {
			break
		}
		clock.Add(66 * time.Minute)
	}
	b.login(svc.OwnerToken) // the session ended in those 24 hours
	_, page = b.get("/webhooks/" + id)
	if !strings.Contains(page, "disabled-reason") || !strings.Contains(page, "no attempt succeeded for 24h") || !strings.Contains(page, "HTTP 500") {
		t.Fatalf("the endpoint's page does not say why it was disabled: %s", page)
	}
	if _, list := b.get("/webhooks"); !strings.Contains(list, "Disabled") || !strings.Contains(list, "no attempt succeeded") {
		t.Fatalf("the list does not say why the endpoint was disabled: %s", list)
	}
	failing.Store(false)
	msg := regexp.MustCompile(`/deliveries/(msg_[0-9a-f]+)/retry`).FindStringSubmatch(page)
	if msg == nil {
		t.Fatalf("no Retry for the failed delivery: %s", page)
	}
	if code, _, _ := b.post("/webhooks/"+id+"/enable", nil); code != http.StatusSeeOther {
		t.Fatalf("Enable = %d", code)
	}
	if code, _, _ := b.post("/webhooks/"+id+"/deliveries/"+msg[1]+"/retry", nil); code != http.StatusSeeOther {
		t.Fatalf("Retry = %d", code)
	}
	for i := 0; i < 500 && !strings.Contains(page, "Delivered"); i++ {
		time.Sleep(10 * time.Millisecond)
		_, page = b.get("/webhooks/" + id)
	}
	if !strings.Contains(page, "Delivered") || strings.Contains(page, "disabled-reason") {
		t.Fatalf("after Enable and Retry: %s", page)
	}
	code, _, page = b.post("/webhooks/"+id+"/rotate", nil)
	if next := regexp.MustCompile(`whsec_[0-9A-Za-z+/=]+`).FindString(page); code != http.StatusOK || next == "" || next == secret {
		t.Fatalf("Rotate secret = %d: %s", code, page)
	}
	// Another organization's owner cannot reach it.
	admin, _ := client.New(svc.URL, svc.AdminToken)
	other, err := admin.CreateOrg(context.Background(), client.CreateOrgRequest{Name: "other", OwnerEmail: "o@other.example"})
	if err != nil {
		t.Fatal(err)
	}
	ob := newBrowserless(t, svc.URL)
	ob.login(other.Owner.Token)
	if code, _ := ob.get("/webhooks/" + id); code != http.StatusNotFound {
		t.Errorf("another organization's GET /webhooks/%s = %d; want 404", id, code)
	}
	if code, _, _ := ob.post("/webhooks/"+id+"/delete", nil); code != http.StatusNotFound {
		t.Errorf("another organization's delete = %d; want 404", code)
	}
	if code, h, _ := b.post("/webhooks/"+id+"/delete", nil); code != http.StatusSeeOther || h.Get("Location") != "/webhooks" {
		t.Fatalf("Delete = %d", code)
	}
}
