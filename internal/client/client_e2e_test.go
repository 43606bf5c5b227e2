package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// The calls the command line does not make, against the real service: who
// am I, the events feed (head, then a long poll woken by a revoke), the
// audit log, the probes and metrics, and typed errors.
func TestClientAgainstService(t *testing.T) {
	svc := servicetest.Start(t)
	ctx := context.Background()
	owner, err := client.New(svc.URL, svc.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	me, err := owner.Me(ctx)
	if err != nil || me.Role != client.RoleOwner || me.OrgID == "" {
		t.Fatalf("Me: %+v, %v", me, err)
	}
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "shop", Kind: client.KindCloudFunction})
	if err != nil {
		t.Fatal(err)
	}
	key, err := owner.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: "ci", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sidecar, _ := client.New(svc.URL, app.VerifierToken)
	head, err := sidecar.EventsHead(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A long poll that a revoke wakes up well before its wait is over.
	type result struct {
		page *client.EventPage
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		p, err := sidecar.Events(ctx, head, 20*time.Second)
		done <- result{p, err}
	}()
	time.Sleep(100 * time.Millisecond) // let the poll start waiting
	if err := owner.RevokeKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.page.Events) != 1 || r.page.Events[0].Type != client.EventKeyRevoked || r.page.Events[0].KeyID != key.ID || r.page.Next <= head {
		t.Errorf("events: %+v", r.page)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("the long poll took %v to see the revoke", waited)
	}

	audit, err := owner.ListAudit(ctx, 10)
	if err != nil || len(audit) == 0 {
		t.Fatalf("ListAudit: %v %v", audit, err)
	}
	if !strings.HasPrefix(audit[0].Action, "key.") {
		t.Errorf("newest audit record %+v, want the key's revoke", audit[0])
	}

	anon, _ := client.New(svc.URL, "")
	if err := anon.Healthz(ctx); err != nil {
		t.Error(err)
	}
	if err := anon.Readyz(ctx); err != nil {
		t.Error(err)
	}
	if m, err := anon.Metrics(ctx); err != nil || !strings.Contains(m, "appkeys_") {
		t.Errorf("Metrics: %v, %d bytes without appkeys_ families", err, len(m))
	}

	// Errors are typed.
	if err := owner.RevokeKey(ctx, key.ID); !client.IsCode(err, client.CodeNotFound) || !client.IsStatus(err, 404) {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := sidecar.ListApps(ctx); !client.IsStatus(err, 403) && !client.IsStatus(err, 401) {
		t.Errorf("a verifier token listing apps: %v", err)
	}
	if _, err := anon.ListApps(ctx); !client.IsCode(err, client.CodeUnauthorized) {
		t.Errorf("no token: %v", err)
	}
}
