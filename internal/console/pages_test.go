package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// pagesFixture is an organization with an owner, a member with two keys,
// a secret, and a second organization with its own user and secret.
type pagesFixture struct {
	svc                   *servicetest.Service
	owner, member         keyservice.Caller
	memberID, memberToken string
	appID                 string
	keyIDs                []string
	otherOwner            keyservice.Caller
	otherUserID           string
}

func newPagesFixture(t *testing.T) pagesFixture {
	t.Helper()
	ctx := context.Background()
	svc := startConsole(t)
	ks := svc.Server.Service
	f := pagesFixture{svc: svc, owner: ownerCaller(t, svc, svc.OwnerToken)}
	mu, tok, err := ks.CreateUser(ctx, f.owner, "dev@appkeys.local", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	f.memberID, f.memberToken, f.member = mu.ID, tok, ownerCaller(t, svc, tok)
	app, err := ks.CreateApp(ctx, f.owner, "orders-fn", keyservice.KindCloudFunction)
	if err != nil {
		t.Fatal(err)
	}
	f.appID = app.App.ID
	for _, name := range []string{"ci", "nightly"} {
		k, err := ks.CreateKey(ctx, f.member, f.appID, keyservice.CreateKeyRequest{Name: name, ExpiresAt: time.Now().AddDate(0, 0, 30)})
		if err != nil {
			t.Fatal(err)
		}
		f.keyIDs = append(f.keyIDs, k.Key.ID)
	}
	if _, err := ks.CreateSecret(ctx, f.owner, "DB_PASSWORD", "hunter2-value"); err != nil {
		t.Fatal(err)
	}
	org, err := ks.CreateOrg(ctx, ownerCaller(t, svc, svc.AdminToken), "other-co", "boss@other.example")
	if err != nil {
		t.Fatal(err)
	}
	f.otherOwner = ownerCaller(t, svc, org.OwnerToken)
	ou, _, err := ks.CreateUser(ctx, f.otherOwner, "victim@other.example", keyservice.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	f.otherUserID = ou.ID
	if _, err := ks.CreateSecret(ctx, f.otherOwner, "OTHER_SECRET", "other-org-value"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f pagesFixture) role(t *testing.T, c keyservice.Caller, id string) string {
	t.Helper()
	users, err := f.svc.Server.Service.ListUsers(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.ID == id {
			return u.Role
		}
	}
	return "gone"
}

func (f pagesFixture) auditCount(t *testing.T, c keyservice.Caller, action string) int {
	t.Helper()
	recs, err := f.svc.Server.Service.ListAuditWhere(context.Background(), c, keyservice.AuditQuery{Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func TestMemberSeesUsersWithoutControlsAndCannotPostOwnerForms(t *testing.T) {
	f := newPagesFixture(t)
	b := newBrowserless(t, f.svc.URL)
	b.login(f.memberToken)
	code, page := b.get("/users")
	if code != http.StatusOK || !strings.Contains(page, "owner@appkeys.local") || !strings.Contains(page, "dev@appkeys.local") {
		t.Fatalf("a member's Users page = %d:\n%s", code, page)
	}
	for _, control := range []string{"Add User", "Remove user", "Change Role", `action="/users`} {
		if strings.Contains(page, control) {
			t.Errorf("a member's Users page offers %q", control)
		}
	}
	users, _ := f.svc.Server.Service.ListUsers(context.Background(), f.owner)
	var ownerUserID string
	for _, u := range users {
		if u.Role == keyservice.RoleOwner {
			ownerUserID = u.ID
		}
	}
	// The forms posted directly, with the member's own valid CSRF token.
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/users", url.Values{"email": {"mallory@appkeys.local"}, "role": {"owner"}}},
		{"/users/" + ownerUserID + "/role", url.Values{"role": {"member"}}},
		{"/users/" + ownerUserID + "/remove", nil},
	} {
		if code, _, _ := b.post(tc.path, tc.form); code != http.StatusForbidden {
			t.Errorf("member POST %s = %d, want 403", tc.path, code)
		}
	}
	if got := f.role(t, f.owner, ownerUserID); got != keyservice.RoleOwner {
		t.Errorf("the owner's role after the member's forms: %s", got)
	}
	if n := len(users); n != 2 {
		t.Fatalf("users before: %d", n)
	}
	if after, _ := f.svc.Server.Service.ListUsers(context.Background(), f.owner); len(after) != 2 {
		t.Errorf("users after the member's forms: %d, want 2", len(after))
	}
	// The audit log is the managers': a member is told so.
	if code, page := b.get("/audit"); code != http.StatusForbidden || !strings.Contains(page, "Only an Organization Owner or Aura Owner") {
		t.Errorf("a member's Audit log = %d:\n%s", code, page)
	}
}

func TestNewFormsRefuseAMissingOrWrongCSRFToken(t *testing.T) {
	f := newPagesFixture(t)
	b := newBrowserless(t, f.svc.URL)
	b.login(f.svc.OwnerToken)
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/users", url.Values{"email": {"csrf@appkeys.local"}, "role": {"member"}}},
		{"/users/" + f.memberID + "/role", url.Values{"role": {"owner"}}},
		{"/users/" + f.memberID + "/remove", nil},
		{"/secrets", url.Values{"name": {"FORGED"}, "value": {"x"}}},
		{"/secrets/reveal", url.Values{"name": {"DB_PASSWORD"}, "confirm": {"yes"}}},
		{"/secrets/delete", url.Values{"name": {"DB_PASSWORD"}}},
	} {
		for _, token := range []string{"", "forged-token"} {
			form := url.Values{}
			for k, v := range tc.form {
				form[k] = v
			}
			form.Set("csrf", token)
			code, _, page := b.do(http.MethodPost, tc.path, form)
			if code != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q = %d, want 403", tc.path, token, code)
			}
			if strings.Contains(page, "hunter2-value") {
				t.Errorf("POST %s without a valid CSRF token showed the secret", tc.path)
			}
		}
	}
	ctx := context.Background()
	ks := f.svc.Server.Service
	if got := f.role(t, f.owner, f.memberID); got != keyservice.RoleMember {
		t.Errorf("member's role after forged forms: %s", got)
	}
	if secs, _ := ks.ListSecrets(ctx, f.owner); len(secs) != 1 {
		t.Errorf("secrets after forged forms: %+v", secs)
	}
	if users, _ := ks.ListUsers(ctx, f.owner); len(users) != 2 {
		t.Errorf("users after forged forms: %d", len(users))
	}
	if n := f.auditCount(t, f.owner, "secret.read"); n != 0 {
		t.Errorf("secret.read records after forged reveals: %d", n)
	}
}

func TestAnotherOrganizationsUsersSecretsAndAuditAreOutOfReach(t *testing.T) {
	f := newPagesFixture(t)
	b := newBrowserless(t, f.svc.URL)
	b.login(f.svc.OwnerToken)
	for _, path := range []string{"/users/" + f.otherUserID + "/role", "/users/" + f.otherUserID + "/remove"} {
		if code, _, _ := b.post(path, url.Values{"role": {"owner"}}); code != http.StatusNotFound {
			t.Errorf("POST %s (another org's user) = %d, want 404", path, code)
		}
	}
	if got := f.role(t, f.otherOwner, f.otherUserID); got != keyservice.RoleMember {
		t.Errorf("the other org's user after our forms: %s", got)
	}
	code, _, page := b.post("/secrets/reveal", url.Values{"name": {"OTHER_SECRET"}, "confirm": {"yes"}})
	if code != http.StatusNotFound || strings.Contains(page, "other-org-value") {
		t.Errorf("reveal of another org's secret = %d", code)
	}
	if code, _, _ := b.post("/secrets/delete", url.Values{"name": {"OTHER_SECRET"}}); code != http.StatusNotFound {
		t.Errorf("delete of another org's secret = %d, want 404", code)
	}
	if _, v, err := f.svc.Server.Service.ReadSecret(context.Background(), f.otherOwner, "OTHER_SECRET"); err != nil || v != "other-org-value" {
		t.Errorf("the other org's secret after our forms: %q %v", v, err)
	}
	for _, path := range []string{"/users", "/secrets", "/audit", "/audit?actor=" + f.otherUserID, "/audit?action=user.create"} {
		_, page := b.get(path)
		for _, leak := range []string{"victim@other.example", "OTHER_SECRET", f.otherUserID, "boss@other.example"} {
			if strings.Contains(page, leak) {
				t.Errorf("%s shows the other organization's %q", path, leak)
			}
		}
	}
}

func TestSecretRevealNeedsConfirmationAndIsAudited(t *testing.T) {
	f := newPagesFixture(t)
	b := newBrowserless(t, f.svc.URL)
	b.login(f.memberToken) // every role reads its organization's secrets
	code, page := b.get("/secrets")
	if code != http.StatusOK || !strings.Contains(page, "DB_PASSWORD") || strings.Contains(page, "hunter2-value") {
		t.Fatalf("Secrets page = %d, lists the name and not the value?\n%s", code, page)
	}
	for _, confirm := range []string{"", "no"} {
		code, _, page := b.post("/secrets/reveal", url.Values{"name": {"DB_PASSWORD"}, "confirm": {confirm}})
		if code != http.StatusUnprocessableEntity || strings.Contains(page, "hunter2-value") {
			t.Errorf("reveal with confirm %q = %d (value shown: %v)", confirm, code, strings.Contains(page, "hunter2-value"))
		}
	}
	if n := f.auditCount(t, f.owner, "secret.read"); n != 0 {
		t.Fatalf("secret.read records before a confirmed reveal: %d", n)
	}
	code, _, page = b.post("/secrets/reveal", url.Values{"name": {"DB_PASSWORD"}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(page, "hunter2-value") {
		t.Fatalf("confirmed reveal = %d:\n%s", code, page)
	}
	recs, _ := f.svc.Server.Service.ListAuditWhere(context.Background(), f.owner, keyservice.AuditQuery{Action: "secret.read", Limit: 10})
	if len(recs) != 1 || recs[0].Actor != f.memberID || recs[0].Target != "DB_PASSWORD" {
		t.Fatalf("secret.read audit after the reveal: %+v", recs)
	}
	// The value is shown in that answer only.
	if _, page := b.get("/secrets"); strings.Contains(page, "hunter2-value") {
		t.Errorf("the value stays on the Secrets page")
	}
}

func TestUsersPageSaysHowManyKeysARemovalOrphans(t *testing.T) {
	f := newPagesFixture(t)
	b := newBrowserless(t, f.svc.URL)
	b.login(f.svc.OwnerToken)
	_, page := b.get("/users")
	if !strings.Contains(page, `data-orphans="2 API keys"`) {
		t.Fatalf("the Users page does not say the member's 2 keys would be orphaned:\n%s", page)
	}
	code, h, _ := b.post("/users/"+f.memberID+"/remove", nil)
	if code != http.StatusSeeOther {
		t.Fatalf("remove = %d", code)
	}
	_, page = b.get(h.Get("Location"))
	if !strings.Contains(page, "Removed dev@appkeys.local. Their 2 API keys are now under Orphaned") {
		t.Errorf("the notice after a removal:\n%s", page)
	}
	keys, _ := f.svc.Server.Service.ListKeys(context.Background(), f.owner, "", keyservice.StateOrphaned)
	if len(keys) != 2 {
		t.Errorf("orphaned keys after the removal: %d", len(keys))
	}
}

func TestAuditLogFiltersPagesAndLinks(t *testing.T) {
	f := newPagesFixture(t)
	b := newBrowserless(t, f.svc.URL)
	b.login(f.svc.OwnerToken)
	code, page := b.get("/audit?action=key.create")
	if code != http.StatusOK {
		t.Fatalf("audit = %d:\n%s", code, page)
	}
	for _, id := range f.keyIDs {
		if !strings.Contains(page, `href="/keys/`+id+`"`) {
			t.Errorf("the key.create entry does not link to /keys/%s", id)
		}
	}
	if !strings.Contains(page, `href="/users#`+f.memberID+`"`) {
		t.Errorf("the entries do not link to their actor")
	}
	if strings.Contains(page, "<code>secret.create</code>") {
		t.Errorf("the action filter let another action through")
	}
	_, page = b.get("/audit?app=" + f.appID)
	if !strings.Contains(page, `href="/apps/`+f.appID+`"`) || !strings.Contains(page, "<code>app.create</code>") {
		t.Errorf("the app filter lacks the app's own entry")
	}
	if strings.Contains(page, "<code>user.create</code>") {
		t.Errorf("the app filter shows a user entry")
	}
	_, page = b.get("/audit?actor=" + f.memberID)
	if strings.Contains(page, "<code>app.create</code>") || !strings.Contains(page, "<code>key.create</code>") {
		t.Errorf("the actor filter is wrong")
	}
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	if _, page = b.get("/audit?from=" + tomorrow); !strings.Contains(page, "No entries match") {
		t.Errorf("a range in the future shows entries")
	}
	// Pages of one: the first is the newest, Older entries goes on.
	_, first := b.get("/audit?per=1")
	m := olderRE.FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("no Older entries link on a page of one:\n%s", first)
	}
	_, second := b.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if second == first || !strings.Contains(second, "Newest entries") {
		t.Errorf("the second page is not another page")
	}
	if code, _ := b.get("/audit?before=abc"); code != http.StatusBadRequest {
		t.Errorf("a malformed cursor = %d, want 400", code)
	}
	if code, _ := b.get("/audit?from=yesterday"); code != http.StatusBadRequest {
		t.Errorf("a malformed date = %d, want 400", code)
	}
}

var olderRE = regexp.MustCompile(`href="(/audit\?[^"]*before=[0-9]+[^"]*)"[^>]*>Older entries`)

// TestAuraOwnerCannotMakeOrUnmakeOwners: an Aura Owner manages users but
// not owners: no owner role offered, and the forms posted anyway refused;
// nobody changes their own role.
func TestAuraOwnerCannotMakeOrUnmakeOwners(t *testing.T) {
	f := newPagesFixture(t)
	ctx := context.Background()
	ks := f.svc.Server.Service
	aura, auraToken, err := ks.CreateUser(ctx, f.owner, "aura@appkeys.local", keyservice.RoleAuraOwner)
	if err != nil {
		t.Fatal(err)
	}
	ownerID := userIDOf(t, ks, f.owner, "owner@appkeys.local")
	b := newBrowserless(t, f.svc.URL)
	b.login(auraToken)
	_, page := b.get("/users")
	if strings.Contains(page, `value="owner"`) || strings.Contains(page, "Remove user owner@appkeys.local") {
		t.Errorf("an Aura Owner is offered the owner role or the owner's removal")
	}
	for _, tc := range []struct {
		path string
		form url.Values
		want int
	}{
		{"/users/" + f.memberID + "/role", url.Values{"role": {"owner"}}, http.StatusForbidden},
		{"/users/" + ownerID + "/role", url.Values{"role": {"member"}}, http.StatusForbidden},
		{"/users/" + ownerID + "/remove", nil, http.StatusForbidden},
		{"/users", url.Values{"email": {"boss2@appkeys.local"}, "role": {"owner"}}, http.StatusForbidden},
		{"/users/" + aura.ID + "/role", url.Values{"role": {"owner"}}, http.StatusConflict},
	} {
		if code, _, _ := b.post(tc.path, tc.form); code != tc.want {
			t.Errorf("Aura Owner POST %s %v = %d, want %d", tc.path, tc.form, code, tc.want)
		}
	}
	if got := f.role(t, f.owner, ownerID); got != keyservice.RoleOwner {
		t.Errorf("the owner's role: %s", got)
	}
	if got := f.role(t, f.owner, f.memberID); got != keyservice.RoleMember {
		t.Errorf("the member's role: %s", got)
	}
	if got := f.role(t, f.owner, aura.ID); got != keyservice.RoleAuraOwner {
		t.Errorf("the Aura Owner's own role: %s", got)
	}
	// What an Aura Owner may do: make a member an Aura Owner, audited.
	if code, _, _ := b.post("/users/"+f.memberID+"/role", url.Values{"role": {"aura_owner"}}); code != http.StatusSeeOther {
		t.Fatalf("Aura Owner promotes a member to Aura Owner = %d", code)
	}
	recs, _ := ks.ListAuditWhere(ctx, f.owner, keyservice.AuditQuery{Action: "user.role", Limit: 10})
	if len(recs) != 1 || recs[0].Actor != aura.ID || recs[0].Target != f.memberID {
		t.Errorf("user.role audit: %+v", recs)
	}
}

func userIDOf(t *testing.T, ks *keyservice.Service, c keyservice.Caller, email string) string {
	t.Helper()
	users, err := ks.ListUsers(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Email == email {
			return u.ID
		}
	}
	t.Fatalf("no user %s", email)
	return ""
}
