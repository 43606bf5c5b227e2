package console_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// The Create API Key dialog's optional limits, in the browser: a rate per
// minute and networks typed by a user reach the key, and its row says them.
func TestCreateKeyWithLimitsInTheBrowser(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := svc.Server.Service.CreateApp(ctx, owner, "orders-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	b := newTab(t, svc.URL)
	b.login(svc.OwnerToken)
	b.open("/apps/" + app.App.ID + "/keys")
	b.waitText("No active API keys yet")
	b.click("Create API Key")
	b.waitText("Create API key for Cloud Function - orders-fn")
	b.fill("API Key Name", "partner")
	b.fill("Rate limit", "100")
	b.do("choose per minute", chromedp.SetValue(chromedp.CSS(`#key-rate-per`), "1m"))
	b.fill("Allowed networks", "10.0.0.0/8, 192.168.1.7")
	b.screenshot("create-key-limits")
	b.click("Create API Key")
	b.waitText("API key created")
	b.click("Close")
	b.waitText("100 per minute · from 10.0.0.0/8, 192.168.1.7/32")
	keys, err := svc.Server.Service.ListKeys(ctx, owner, app.App.ID, "")
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	if l := keys[0].Limits; l.RateLimit == nil || l.RateLimit.Requests != 100 || l.RateLimit.Per != time.Minute || len(l.AllowedCIDRs) != 2 {
		t.Fatalf("the key's limits: %+v", l)
	}
}
