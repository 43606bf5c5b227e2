package keyservice

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func TestVerifierCacheForgetAndBound(t *testing.T) {
	c := newVerifierCache()
	c.put("h1", verifierEntry{app: App{ID: "app_1"}})
	c.put("h2", verifierEntry{app: App{ID: "app_2"}})
	if e, ok := c.get("h1"); !ok || e.app.ID != "app_1" {
		t.Fatalf("get(h1) = %v, %v; want app_1", e.app.ID, ok)
	}
	c.forgetApp("app_1")
	if _, ok := c.get("h1"); ok {
		t.Error("h1 still cached after its app was forgotten")
	}
	if _, ok := c.get("h2"); !ok {
		t.Error("h2 forgotten with another app")
	}
	c.entries["old"] = verifierEntry{app: App{ID: "app_old"}, until: time.Now().Add(-time.Millisecond)}
	if _, ok := c.get("old"); ok {
		t.Error("an entry past its time was served")
	}
	for i := range maxVerifiers + 10 {
		c.put(string(rune(i)), verifierEntry{app: App{ID: "app"}})
	}
	if n := len(c.entries); n > maxVerifiers {
		t.Errorf("%d entries; want at most %d", n, maxVerifiers)
	}
}

// A deleted app's verifier token, cached a moment before, shows the app as
// deleted at once on the replica that deleted it.
func TestDeletedAppSeenAtOnce(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "appkeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, ownerToken := bootstrapped(t, st, Config{})
	owner, err := svc.Authenticate(ctx, ownerToken)
	if err != nil {
		t.Fatal(err)
	}
	app, err := svc.CreateApp(ctx, owner, "doomed", KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := svc.Authenticate(ctx, app.VerifierToken); err != nil || c.App == nil || c.App.ID != app.App.ID || c.App.DeletedAt != nil {
		t.Fatalf("verifier token before delete: %+v, %v", c, err)
	}
	if err := svc.DeleteApp(ctx, owner, app.App.ID); err != nil {
		t.Fatal(err)
	}
	c, err := svc.Authenticate(ctx, app.VerifierToken)
	if err != nil || c.App == nil || c.App.DeletedAt == nil {
		t.Fatalf("verifier token after delete: %+v, %v; want the app, deleted", c, err)
	}
	if _, err := svc.Authenticate(ctx, "akv_"+strings.Repeat("x", 43)); err == nil {
		t.Fatal("an unknown verifier token authenticated")
	}
}
