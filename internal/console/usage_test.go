package console_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// usageWorld is a console with one app, two keys and a sidecar's report.
type usageWorld struct {
	svc      *servicetest.Service
	app      keyservice.App
	used     keyservice.Key
	idle     keyservice.Key
	owner    keyservice.Caller
	reporter keyservice.Caller
}

func newUsageWorld(t *testing.T) *usageWorld {
	t.Helper()
	svc := startConsole(t)
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := ks.CreateApp(ctx, owner, "orders-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	w := &usageWorld{svc: svc, app: app.App, owner: owner, reporter: ownerCaller(t, svc, app.VerifierToken)}
	for i, name := range []string{"busy-key", "idle-key"} {
		k, err := ks.CreateKey(ctx, owner, app.App.ID, keyservice.CreateKeyRequest{Name: name, ExpiresAt: time.Now().Add(30 * 24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			w.used = k.Key
		} else {
			w.idle = k.Key
		}
	}
	if _, err := ks.ReportUsage(ctx, w.reporter, []keyservice.UsageCount{{KeyID: w.used.ID, Allowed: 1234, RateLimited: 56, Forbidden: 7}}); err != nil {
		t.Fatal(err)
	}
	return w
}

var barRE = regexp.MustCompile(`data-allowed="(\d+)" data-limited="(\d+)"`)

// A key's page shows its fields and its requests: the totals in words, one
// bar per hour (24, or 168 for 7 days) with the numbers in its tooltip and
// in the table. Another organization's key is not found, and its page
// says nothing of it; the key lists link each key and count its requests.
func TestKeyPageShowsUsage(t *testing.T) {
	w := newUsageWorld(t)
	b := newBrowserless(t, w.svc.URL)
	b.login(w.svc.OwnerToken)

	code, page := b.get("/keys/" + w.used.ID)
	if code != http.StatusOK {
		t.Fatalf("GET /keys/%s = %d", w.used.ID, code)
	}
	for _, want := range []string{"busy-key", w.used.ID, "orders-fn", "Active", "Last used", "1,234", "63", `role="img"`,
		"<title id=\"usage-chart-title\">", "1,234 allowed and 63 limited", "requests per hour", "The numbers, hour by hour"} {
		if !strings.Contains(page, want) {
			t.Errorf("the key page lacks %q", want)
		}
	}
	bars := barRE.FindAllStringSubmatch(page, -1)
	if len(bars) < 24 || len(bars) > 25 || bars[len(bars)-1][1] != "1234" || bars[len(bars)-1][2] != "63" {
		t.Fatalf("24 hours of bars, the last with the report; got %d, last %v", len(bars), bars[len(bars)-1:])
	}
	if strings.Contains(page, "Never") {
		t.Error("the reported key still reads Last used: Never")
	}
	_, page = b.get("/keys/" + w.used.ID + "?range=7d")
	if n := len(barRE.FindAllString(page, -1)); n < 7*24 || n > 7*24+1 {
		t.Fatalf("7 days: %d bars", n)
	}
	_, page = b.get("/keys/" + w.idle.ID)
	if !strings.Contains(page, "No requests with this key in this period") {
		t.Error("an idle key's page does not say it had no requests")
	}

	for _, view := range []string{"/keys", "/apps/" + w.app.ID + "/keys"} {
		_, page := b.get(view)
		if !strings.Contains(page, "Requests (24h)") || !strings.Contains(page, `href="/keys/`+w.used.ID+`"`) {
			t.Fatalf("%s: no Requests (24h) column or no link to the key's page", view)
		}
		if !regexp.MustCompile(`(?s)busy-key.*?class="num requests"><a [^>]*>1,297</a>`).MatchString(page) {
			t.Errorf("%s: busy-key's row does not count 1,297 requests", view)
		}
	}

	// Another organization.
	admin := ownerCaller(t, w.svc, w.svc.AdminToken)
	org2, err := w.svc.Server.Service.CreateOrg(context.Background(), admin, "other", "boss@other.example")
	if err != nil {
		t.Fatal(err)
	}
	b2 := newBrowserless(t, w.svc.URL)
	b2.login(org2.OwnerToken)
	code, page = b2.get("/keys/" + w.used.ID)
	if code != http.StatusNotFound || strings.Contains(page, "busy-key") || strings.Contains(page, "1,234") {
		t.Fatalf("another organization's key page: %d\n%s", code, page)
	}
	if code, _ := b2.get(fmt.Sprintf("/keys/%s?range=7d", "key_doesnotexist")); code != http.StatusNotFound {
		t.Fatalf("an unknown key: %d", code)
	}
}
