package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// rowText is the visible text of the keys table's row for the key named
// name, or "" when there is none.
func (b *tab) rowText(name string) string {
	b.t.Helper()
	n, _ := json.Marshal(name)
	return eval[string](b, fmt.Sprintf(`(() => {
		const th = [...document.querySelectorAll("table.keys tbody th[scope=row]")].find(e => e.textContent.trim() === %s);
		return th ? th.closest("tr").innerText.replace(/\s+/g, " ") : "";
	})()`, n))
}

// Keys due within 7 days are marked in words, with their date, in every
// key list (the Container Service's and the app's); a key due in 30 days,
// an expired key and an orphaned one are not.
func TestExpiringSoonInTheBrowser(t *testing.T) {
	clk := servicetest.NewClock(time.Now().UTC())
	svc := startConsole(t, servicetest.WithClock(clk))
	ctx := context.Background()
	ks := svc.Server.Service
	owner := ownerCaller(t, svc, svc.OwnerToken)
	mem, memberToken, err := ks.CreateUser(ctx, owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	member := ownerCaller(t, svc, memberToken)
	app, err := ks.CreateApp(ctx, owner, "orders-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	key := func(by keyservice.Caller, name string, in time.Duration) keyservice.Key {
		t.Helper()
		k, err := ks.CreateKey(ctx, by, app.App.ID, keyservice.CreateKeyRequest{Name: name, ExpiresAt: clk.Now().Add(in)})
		if err != nil {
			t.Fatal(err)
		}
		return k.Key
	}
	const day = 24 * time.Hour
	key(owner, "was-due", time.Hour)
	clk.Add(2 * time.Hour) // was-due has expired
	soon := key(owner, "due-soon", 3*day)
	key(owner, "due-later", 30*day)
	key(member, "orphan-due", 3*day)
	if err := ks.DeleteUser(ctx, owner, mem.ID); err != nil {
		t.Fatal(err)
	}
	soonDate := soon.ExpiresAt.UTC().Format("Jan 2, 2006") // as the Expires column writes it

	b := newTab(t, svc.URL)
	b.login(svc.OwnerToken)
	for _, view := range []string{"/keys", "/apps/" + app.App.ID + "/keys"} {
		b.open(view)
		b.waitText("due-later")
		b.waitText("1 API key expires within 7 days")
		if row := b.rowText("due-soon"); !strings.Contains(row, "Expires soon") || !strings.Contains(row, soonDate) {
			t.Errorf("%s: the key due in 3 days reads %q; want \"Expires soon\" and %s", view, row, soonDate)
		}
		for _, name := range []string{"due-later", "was-due"} {
			if row := b.rowText(name); row == "" || strings.Contains(row, "Expires soon") {
				t.Errorf("%s: %s reads %q; want it listed, not marked as expiring soon", view, name, row)
			}
		}
		if row := b.rowText("was-due"); !strings.Contains(row, "Expired") {
			t.Errorf("%s: the expired key reads %q", view, row)
		}
		b.open(view + "?tab=orphaned")
		b.waitText("orphan-due")
		if row := b.rowText("orphan-due"); strings.Contains(row, "Expires soon") {
			t.Errorf("%s, Orphaned: the orphaned key reads %q; an orphan works no more, so it is not expiring", view, row)
		}
	}
	b.open("/keys")
	b.waitText("due-soon")
	b.screenshot("expiring")
}
