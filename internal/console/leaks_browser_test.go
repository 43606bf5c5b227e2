package console_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/leaktest"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestConsoleFindAKeyAndLeakBanner: on the Container Service page an
// owner pastes a key into Find a key and sees which key it is, without
// the key coming back into the page; another organization's key is not
// found, a pasted near-miss is explained, and a member has no such box.
// A key GitHub reported leaked while it keeps working (--leak-action
// notify) puts a banner on its app's page and a Leaked badge in the list.
func TestConsoleFindAKeyAndLeakBanner(t *testing.T) {
	gh := leaktest.NewSigner()
	keys := leaktest.NewKeyServer(gh)
	t.Cleanup(keys.Close)
	svc := startConsole(t, servicetest.WithConfig(func(c *keyserver.Config) { c.LeakKeysURL, c.LeakAction = keys.URL, "notify" }))
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	app, err := ks.CreateApp(ctx, owner, "shop", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(30 * 24 * time.Hour)
	leaked, err := ks.CreateKey(ctx, owner, app.App.ID, keyservice.CreateKeyRequest{Name: "ci-leaked", ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.CreateKey(ctx, owner, app.App.ID, keyservice.CreateKeyRequest{Name: "clean", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	org2, err := ks.CreateOrg(ctx, keyservice.Caller{Admin: true}, "other", "o@other.example")
	if err != nil {
		t.Fatal(err)
	}
	owner2 := ownerCaller(t, svc, org2.OwnerToken)
	app2, err := ks.CreateApp(ctx, owner2, "theirs", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := ks.CreateKey(ctx, owner2, app2.App.ID, keyservice.CreateKeyRequest{Name: "their-key", ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	if status, b, err := leaktest.Post(ctx, http.DefaultClient, svc.URL+"/v1/leaks/github", gh, leaktest.Body(leaked.Plain)); err != nil || status != http.StatusOK {
		t.Fatalf("leak report: %d %v %s", status, err, b)
	}
	_, memberToken, err := ks.CreateUser(ctx, owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}

	b := newTab(t, svc.URL)
	b.login(svc.OwnerToken)
	b.waitText("Find a key")
	b.fill("API key", leaked.Plain)
	b.click("Find Key")
	b.waitText("This key still works")
	for _, want := range []string{"ci-leaked", "shop", "Active, reported leaked", leaked.Key.ID} {
		if !b.hasText(want) {
			t.Errorf("the key found does not show %q:\n%s", want, b.textNoFail())
		}
	}
	b.screenshot("find-a-key")
	if eval[bool](b, `document.documentElement.outerHTML.includes(`+strconv.Quote(leaked.Plain)+`)`) {
		t.Fatal("the page written back holds the key that was pasted")
	}
	b.fill("API key", theirs.Plain)
	b.click("Find Key")
	b.waitText("No API key of your organization matches")
	if b.hasText("their-key") || b.hasText("theirs") {
		t.Fatal("another organization's key was shown")
	}
	b.fill("API key", "cak_short")
	b.click("Find Key")
	b.waitText("That is not an appkeys API key")

	b.open("/apps/" + app.App.ID)
	b.waitText("1 API key of this app was reported leaked and still works")
	b.open("/apps/" + app.App.ID + "/keys")
	b.waitText("ci-leaked")
	if n := eval[int](b, `document.querySelectorAll("tbody .badge.err").length`); n != 1 {
		t.Fatalf("%d Leaked badges in the keys list; want 1 (the leaked key's)", n)
	}

	b.logout()
	b.login(memberToken)
	b.waitText("Container Service")
	if b.hasText("Find a key") {
		t.Fatal("a member is offered Find a key")
	}
}
