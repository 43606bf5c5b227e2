package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/appkeys/appkeys/internal/verify"
)

// A shared client carries the verifier token of the newest config that
// uses it: a reload with a rolled token switches it, and a reload that
// fails (its handlers cleaned up, the old config staying) switches back.
func TestTokenHoldersFollowTheNewestConfig(t *testing.T) {
	var seen atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"valid": false, "code": "NOT_FOUND"}`))
	}))
	defer srv.Close()
	c, err := verify.NewClient(verify.ClientConfig{BaseURL: srv.URL, Token: "akv_old"})
	if err != nil {
		t.Fatal(err)
	}
	sent := func() string {
		t.Helper()
		if _, err := c.Verify(context.Background(), mustKey(t)); err != nil {
			t.Fatal(err)
		}
		return seen.Load().(string)
	}
	tokens := tokenHolders{client: c}
	running, reloaded, failed := new(Handler), new(Handler), new(Handler)
	tokens.hold(running, "akv_old")
	if got := sent(); got != "Bearer akv_old" {
		t.Fatalf("sent %q", got)
	}
	// A reload that fails after provisioning: back to the running token.
	tokens.hold(failed, "akv_typo")
	tokens.release(failed)
	if got := sent(); got != "Bearer akv_old" {
		t.Fatalf("after a failed reload, sent %q", got)
	}
	// A reload that succeeds: the new config first, the old one cleaned up.
	tokens.hold(reloaded, "akv_new")
	if got := sent(); got != "Bearer akv_new" {
		t.Fatalf("after the new config's provisioning, sent %q", got)
	}
	tokens.release(running)
	if got := sent(); got != "Bearer akv_new" {
		t.Fatalf("after the old config's cleanup, sent %q", got)
	}
}
