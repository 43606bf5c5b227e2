package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// testUserRoles: a role changes, audited, and never across organizations.
func testUserRoles(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f, other := setup(t, s), setup(t, s)
	m := store.User{ID: id("usr"), OrgID: f.org.ID, Email: "m@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
	must(t, s.CreateUser(ctx, m, f.owner.ID))
	if err := s.SetUserRole(ctx, other.org.ID, m.ID, "owner", other.owner.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another org's owner changed a role: %v", err)
	}
	must(t, s.SetUserRole(ctx, f.org.ID, m.ID, "aura_owner", f.owner.ID, t0))
	if u, err := s.GetUser(ctx, f.org.ID, m.ID); err != nil || u.Role != "aura_owner" {
		t.Fatalf("after the change: %+v %v", u, err)
	}
	recs, _ := s.ListAuditWhere(ctx, f.org.ID, store.AuditFilter{Action: "user.role", Limit: 10})
	if len(recs) != 1 || recs[0].Target != m.ID || recs[0].Detail != "role member to aura_owner" {
		t.Fatalf("user.role audit = %+v", recs)
	}
	// The same email in two organizations: both found, a deleted one not.
	o := store.User{ID: id("usr"), OrgID: other.org.ID, Email: "m@example.com", Role: "member", TokenHash: id("tok"), CreatedAt: t0}
	must(t, s.CreateUser(ctx, o, other.owner.ID))
	if us, err := s.UsersByEmail(ctx, "m@example.com"); err != nil || len(us) != 2 {
		t.Fatalf("UsersByEmail = %+v %v", us, err)
	}
	if _, err := s.DeleteUser(ctx, other.org.ID, o.ID, other.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	if us, err := s.UsersByEmail(ctx, "m@example.com"); err != nil || len(us) != 1 || us[0].ID != m.ID {
		t.Fatalf("UsersByEmail after a delete = %+v %v", us, err)
	}
}

// testAuditFilters: each filter narrows, pages follow the id cursor, and
// no filter reaches another organization's records.
func testAuditFilters(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f, other := setup(t, s), setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "k1", t0.Add(24*time.Hour))
	must(t, s.RecordAudit(ctx, store.Audit{OrgID: f.org.ID, At: t0.Add(time.Hour), Actor: "system", Action: "key.lookup", Target: k.ID}))
	must(t, s.RecordAudit(ctx, store.Audit{OrgID: other.org.ID, At: t0.Add(time.Hour), Actor: other.owner.ID, Action: "key.lookup", Target: k.ID}))
	all, err := s.ListAuditWhere(ctx, f.org.ID, store.AuditFilter{Limit: 100})
	if err != nil || len(all) < 3 {
		t.Fatalf("all = %d %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("not newest first: %+v", all)
		}
	}
	for _, a := range all {
		if a.OrgID != f.org.ID {
			t.Fatalf("another org's record: %+v", a)
		}
	}
	count := func(fl store.AuditFilter) int {
		t.Helper()
		fl.Limit = 100
		recs, err := s.ListAuditWhere(ctx, f.org.ID, fl)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	if n := count(store.AuditFilter{Action: "key.lookup"}); n != 1 {
		t.Errorf("action filter = %d, want 1", n)
	}
	if n := count(store.AuditFilter{Actor: "system"}); n != 1 {
		t.Errorf("actor filter = %d, want 1", n)
	}
	// The app's own create and its key's create and lookup.
	if n := count(store.AuditFilter{AppID: f.app.ID}); n != 3 {
		t.Errorf("app filter = %d, want 3", n)
	}
	if n := count(store.AuditFilter{Since: t0.Add(30 * time.Minute)}); n != 1 {
		t.Errorf("since filter = %d, want 1", n)
	}
	if n := count(store.AuditFilter{Until: t0.Add(30 * time.Minute)}); n != len(all)-1 {
		t.Errorf("until filter = %d, want %d", n, len(all)-1)
	}
	page, _ := s.ListAuditWhere(ctx, f.org.ID, store.AuditFilter{Limit: 1})
	next, _ := s.ListAuditWhere(ctx, f.org.ID, store.AuditFilter{Limit: 1, Before: page[0].ID})
	if len(page) != 1 || len(next) != 1 || next[0].ID != all[1].ID {
		t.Errorf("pages = %+v then %+v", page, next)
	}
	if acts, err := s.AuditActions(ctx, f.org.ID); err != nil || len(acts) < 2 {
		t.Errorf("AuditActions = %v %v", acts, err)
	}
}

// testAuditByKey: a key's history holds the records whose target it is and
// those that name it (the other side of a roll, a secret that holds it),
// never a look-alike id (LIKE's "_" is not a wildcard here) nor another
// organization's record.
func testAuditByKey(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f, other := setup(t, s), setup(t, s)
	k := f.key(t, f.app.ID, f.owner.ID, "k1", t0.Add(24*time.Hour))
	k2 := f.key(t, f.app.ID, f.owner.ID, "k2", t0.Add(24*time.Hour))
	lookalike := strings.Replace(k.ID, "_", "x", 1)
	must(t, s.RecordAudit(ctx, store.Audit{OrgID: f.org.ID, At: t0, Actor: f.owner.ID, Action: "key.lookup", Target: k.ID}))
	must(t, s.RecordAudit(ctx, store.Audit{OrgID: f.org.ID, At: t0, Actor: f.owner.ID, Action: "key.create", Target: k2.ID, Detail: "app " + f.app.ID + ", rolled from " + k.ID}))
	must(t, s.RecordAudit(ctx, store.Audit{OrgID: f.org.ID, At: t0, Actor: f.owner.ID, Action: "key.lookup", Target: lookalike, Detail: "rolled from " + lookalike}))
	must(t, s.RecordAudit(ctx, store.Audit{OrgID: other.org.ID, At: t0, Actor: other.owner.ID, Action: "key.lookup", Target: k.ID}))
	must(t, s.CreateSecret(ctx, store.Secret{OrgID: f.org.ID, Name: "K1", Ciphertext: []byte("x"), CreatedAt: t0, CreatedBy: f.owner.ID, KeyID: k.ID}))
	recs, err := s.ListAuditWhere(ctx, f.org.ID, store.AuditFilter{KeyID: k.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range recs {
		got = append(got, a.Action+" "+a.Target)
	}
	want := []string{"secret.create K1", "key.create " + k2.ID, "key.lookup " + k.ID, "key.create " + k.ID}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history of %s =\n%v\nwant\n%v", k.ID, got, want)
	}
	if recs[0].Detail != "holds key "+k.ID {
		t.Errorf("secret.create detail = %q", recs[0].Detail)
	}
	if recs, _ := s.ListAuditWhere(ctx, f.org.ID, store.AuditFilter{KeyID: k.ID, Limit: 2}); len(recs) != 2 {
		t.Errorf("limit 2 gave %d", len(recs))
	}
	if recs, _ := s.ListAuditWhere(ctx, other.org.ID, store.AuditFilter{KeyID: k.ID, Limit: 100}); len(recs) != 1 || recs[0].Actor != other.owner.ID {
		t.Errorf("the other org sees %+v", recs)
	}
}

// testOIDCLogins: a finished sign-in is recorded once; a second use is
// ErrConflict until the record's time passes, when it is swept.
func testOIDCLogins(t *testing.T, s *store.Store) {
	ctx := context.Background()
	flow := id("flow")
	must(t, s.UseOIDCLogin(ctx, flow, t0, t0.Add(10*time.Minute)))
	if err := s.UseOIDCLogin(ctx, flow, t0.Add(time.Minute), t0.Add(10*time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use of a flow: %v, want ErrConflict", err)
	}
	// Past its expiry the flow cookie itself is refused; the row is swept.
	must(t, s.UseOIDCLogin(ctx, id("flow"), t0.Add(11*time.Minute), t0.Add(21*time.Minute)))
	if err := s.UseOIDCLogin(ctx, flow, t0.Add(11*time.Minute), t0.Add(21*time.Minute)); err != nil {
		t.Fatalf("the swept flow's record is still there: %v", err)
	}
}
