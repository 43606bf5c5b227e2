package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestKeysUsage: a sidecar's report shows in `appkeys keys usage`, hour by
// hour and in total, as a table and as JSON; another organization's key is
// not found; a --since past the bound is refused before any call.
func TestKeysUsage(t *testing.T) {
	svc := servicetest.Start(t)
	e := e2e{t: t, svc: svc}
	owner, err := client.New(svc.URL, svc.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "shop", Kind: client.KindCloudFunction})
	if err != nil {
		t.Fatal(err)
	}
	k, err := owner.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: "ci", ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sidecar, err := client.New(svc.URL, app.VerifierToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sidecar.ReportUsage(ctx, []client.UsageCount{{KeyID: k.ID, Allowed: 41, RateLimited: 2}}); err != nil {
		t.Fatal(err)
	}

	r := e.run(svc.OwnerToken, "keys", "usage", k.ID, "--since", "24h")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if n := len(lines); n < 26 || n > 27 || !strings.HasPrefix(lines[0], "HOUR (UTC)") {
		t.Fatalf("a day of hours, a header and a total; got %d lines:\n%s", n, r.stdout)
	}
	if f := strings.Fields(lines[len(lines)-1]); len(f) != 4 || f[0] != "TOTAL" || f[1] != "41" || f[2] != "2" || f[3] != "0" {
		t.Fatalf("total line %q", lines[len(lines)-1])
	}
	var u client.KeyUsage
	e.runJSON(svc.OwnerToken, &u, "keys", "usage", k.ID, "--since", "7d")
	if len(u.Points) < 7*24 || u.KeyID != k.ID {
		t.Fatalf("-o json: %d points for %s", len(u.Points), u.KeyID)
	}

	org2, err := client.New(svc.URL, svc.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := org2.CreateOrg(ctx, client.CreateOrgRequest{Name: "other", OwnerEmail: "o@other.example"})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.try(o2.Owner.Token, "keys", "usage", k.ID); r.err == nil || !strings.Contains(r.errLine(), "not found") {
		t.Fatalf("another organization's key: %v", r.errLine())
	}
	if r := e.try(svc.OwnerToken, "keys", "usage", k.ID, "--since", "400d"); r.err == nil || !strings.Contains(r.errLine(), "--since") {
		t.Fatalf("--since 400d: %v", r.errLine())
	}
}
