package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// appkeys audit list shows the organization's audit log, console logins
// and logouts included, as a table and as JSON; a member may not read it.
func TestAuditList(t *testing.T) {
	svc := servicetest.Start(t)
	e := e2e{t: t, svc: svc}
	ks, ctx := svc.Server.Service, context.Background()
	cookie, sess, err := ks.StartConsoleSession(ctx, svc.OwnerToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.EndConsoleSession(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	ownerID := sess.Caller.User.ID

	r := e.run(svc.OwnerToken, "audit", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "AT") ||
		!strings.Contains(lines[1], "console.logout") || !strings.Contains(lines[1], ownerID) ||
		!strings.Contains(lines[2], "console.login") || !strings.Contains(lines[2], ownerID) {
		t.Fatalf("audit list, newest first:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, cookie) || strings.Contains(r.stdout, svc.OwnerToken) {
		t.Fatal("audit list prints the cookie or the token")
	}

	var out struct{ Audit []client.AuditRecord }
	e.runJSON(svc.OwnerToken, &out, "audit", "list", "--limit", "1")
	if len(out.Audit) != 1 || out.Audit[0].Action != "console.logout" || out.Audit[0].Actor != ownerID {
		b, _ := json.Marshal(out)
		t.Fatalf("audit list --limit 1 -o json: %s", b)
	}

	if r := e.try(svc.OwnerToken, "audit", "list", "--limit", "0"); r.err == nil || !strings.Contains(r.err.Error(), "--limit") {
		t.Errorf("--limit 0: %v", r.err)
	}
	var member client.CreatedUser
	e.runJSON(svc.OwnerToken, &member, "users", "create", "--email", "m@example.com", "--role", "member")
	if r := e.try(member.Token, "audit", "list"); r.err == nil || !strings.Contains(r.errLine(), "Aura Owner") {
		t.Errorf("a member's audit list: %v", r.errLine())
	}
}
