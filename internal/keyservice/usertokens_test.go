package keyservice

import (
	"context"
	"testing"
	"time"
)

// A user token's expiry holds at the console's door too: an expired token
// cannot log in, a session never outlives the token it started with, and
// revoking the token ends its sessions.
func TestUserTokenExpiryAtConsoleSignIn(t *testing.T) {
	ctx := context.Background()
	w := newSessionWorld(t)
	owner, err := w.svc.Authenticate(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	exp := w.clock().Add(time.Hour)
	_, short, err := w.svc.CreateMyToken(ctx, owner, "an hour", &exp)
	if err != nil {
		t.Fatal(err)
	}
	cookie, sess, err := w.svc.StartConsoleSession(ctx, short, "")
	if err != nil {
		t.Fatal(err)
	}
	if !sess.Expires.Equal(exp) {
		t.Fatalf("a session started with a token expiring at %s ends at %s", exp, sess.Expires)
	}
	w.advance(time.Hour)
	if _, err := w.svc.Authenticate(ctx, short); KindOf(err) != KindUnauthorized {
		t.Fatalf("an expired token authenticates: %v", err)
	}
	if _, _, err := w.svc.StartConsoleSession(ctx, short, ""); KindOf(err) != KindUnauthorized {
		t.Fatalf("an expired token logs in to the console: %v", err)
	}
	_, err = w.svc.ConsoleSession(ctx, cookie)
	wantKind(t, "the session of an expired token", err, KindUnauthorized)

	// Revoking a token ends the sessions started with it, not others.
	_, laptop, err := w.svc.CreateMyToken(ctx, owner, "laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	cookie, _, err = w.svc.StartConsoleSession(ctx, laptop, "")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := w.svc.StartConsoleSession(ctx, w.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.svc.Authenticate(ctx, laptop)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.RevokeMyToken(ctx, owner, c.TokenID); err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.ConsoleSession(ctx, cookie)
	wantKind(t, "the session of a revoked token", err, KindUnauthorized)
	if _, err := w.svc.ConsoleSession(ctx, other); err != nil {
		t.Fatalf("another token's session ended: %v", err)
	}
	if _, err := w.svc.Authenticate(ctx, laptop); KindOf(err) != KindUnauthorized {
		t.Fatalf("a revoked token authenticates: %v", err)
	}
}
