package console_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/webhook/webhooktest"
)

// In a real browser, an owner goes from the Container Service page to
// Webhooks, adds an endpoint (its secret shown once), opens it, presses
// Send test event and sees the delivery in its log.
func TestWebhooksInTheBrowser(t *testing.T) {
	svc := startConsole(t, servicetest.WithConfig(func(c *keyserver.Config) {
		c.WebhooksAllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.WebhookPoll = 20 * time.Millisecond
	}))
	rcv := webhooktest.NewReceiver(t, nil, nil)
	b := newTab(t, svc.URL)
	b.login(svc.OwnerToken)
	b.click("Webhooks")
	b.waitText("Add an endpoint")
	b.fill("URL", rcv.URL)
	b.fill("Description", "incident tool")
	b.click("Add Endpoint")
	b.waitText("It is shown once and will not be shown again")
	b.waitText("whsec_")
	b.click(rcv.URL)
	b.waitText("Delivery log")
	b.click("Send test event")
	b.waitText("Queued a test event")
	for i := 0; i < 200 && !b.hasText("Delivered"); i++ {
		time.Sleep(25 * time.Millisecond)
		b.open("/webhooks/" + eval[string](b, `location.pathname.split("/").pop()`))
	}
	b.waitText("webhook.test")
	b.waitText("Delivered")
	if n := len(rcv.Requests()); n != 1 {
		t.Fatalf("the receiver got %d requests; want the test event", n)
	}
	b.screenshot("webhooks")
}
