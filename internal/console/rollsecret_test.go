package console_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// A key saved as a secret from the console's new-key dialog is recorded
// as the key that secret holds: a roll of the key gives the secret the
// new key, as it does for a key saved at creation through the API.
func TestConsoleSavedSecretFollowsTheRoll(t *testing.T) {
	svc, b, appID, clk := consoleWithApp(t)
	made := b.createKeyPage(appID, "console-key")
	if code, _, _ := b.saveAsSecret(made, "CONSOLE_KEY"); code != http.StatusSeeOther {
		t.Fatalf("Save As Secret = %d", code)
	}
	owner := ownerCaller(t, svc, svc.OwnerToken)
	keys, err := svc.Server.Service.ListKeys(context.Background(), owner, appID, "")
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %+v, %v", keys, err)
	}
	res, err := svc.Server.Service.RollKey(context.Background(), owner, keys[0].ID, keyservice.RollKeyRequest{ExpiresAt: clk.Now().Add(24 * time.Hour), Overlap: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Secrets, []string{"CONSOLE_KEY"}) || res.Plain != "" {
		t.Fatalf("the roll updated secrets %v (key shown: %v); want CONSOLE_KEY", res.Secrets, res.Plain != "")
	}
	_, v, err := svc.Server.Service.ReadSecret(context.Background(), owner, "CONSOLE_KEY")
	if err != nil || v == made.plain {
		t.Fatalf("CONSOLE_KEY still holds the old key (%v)", err)
	}
}
