package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// The create dialog takes optional limits: they reach the key and its row;
// a bad one is said in words, with the form again as typed and no key made.
func TestCreateKeyWithLimits(t *testing.T) {
	svc := startConsole(t)
	ctx := context.Background()
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := svc.Server.Service.CreateApp(ctx, owner, "billing", keyservice.KindDashboardApp)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowserless(t, svc.URL)
	b.login(svc.OwnerToken)
	path := "/apps/" + app.App.ID + "/keys"
	exp := time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02")
	form := func(name, rate, per, cidrs string) url.Values {
		return url.Values{"name": {name}, "expires": {exp}, "rate_requests": {rate}, "rate_per": {per}, "allowed_cidrs": {cidrs}}
	}
	code, _, page := b.post(path, form("limited", "5", "1m", "10.0.0.0/8, 192.168.1.7\n2001:db8::/32"))
	if code != http.StatusCreated || !fullKeyRE.MatchString(page) {
		t.Fatalf("create with limits = %d", code)
	}
	if !strings.Contains(html.UnescapeString(page), "5 per minute · from 10.0.0.0/8, 192.168.1.7/32 +1") {
		t.Fatalf("the new key's row does not show its limits")
	}
	keys, err := svc.Server.Service.ListKeys(ctx, owner, app.App.ID, "")
	if err != nil || len(keys) != 1 || keys[0].Limits.RateLimit == nil || keys[0].Limits.RateLimit.Per != time.Minute || len(keys[0].Limits.AllowedCIDRs) != 3 {
		t.Fatalf("the key made: %+v, %v", keys, err)
	}
	// Without limits: the form's empty fields limit nothing.
	if code, _, page := b.post(path, form("plain", "", "1s", "")); code != http.StatusCreated || !strings.Contains(page, ">None<") {
		t.Fatalf("create without limits = %d", code)
	}
	for _, c := range []struct {
		rate, per, cidrs, says string
	}{
		{"0", "1s", "", "The rate limit must be from 1 to 1000000."},
		{"many", "1s", "", "The rate limit must be a whole number of requests."},
		{"5", "1d", "", "Choose whether the rate limit counts per second, minute or hour."},
		{"", "1s", "10.0.0.1/8", "did you mean 10.0.0.0/8?"},
		{"", "1s", "intranet", "is not a CIDR range"},
	} {
		code, _, page := b.post(path, form("bad", c.rate, c.per, c.cidrs))
		page = html.UnescapeString(page)
		if code != http.StatusUnprocessableEntity || !strings.Contains(page, c.says) || fullKeyRE.MatchString(page) {
			t.Errorf("create with %q per %q from %q = %d; want 422 saying %q", c.rate, c.per, c.cidrs, code, c.says)
		}
		if c.cidrs != "" && !strings.Contains(page, `value="`+c.cidrs+`"`) {
			t.Errorf("the form lost the networks typed: %q", c.cidrs)
		}
	}
	if keys, _ := svc.Server.Service.ListKeys(ctx, owner, app.App.ID, ""); len(keys) != 2 {
		t.Fatalf("%d keys after the refused forms, want 2", len(keys))
	}
}
