package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/store"
)

// The life of a key as a user sees it over the API: created once, listed
// without its secret, verified by its own app only, revoked for good, and
// expired by the clock.
func TestKeyLifecycle(t *testing.T) {
	w := newWorld(t)
	exp := w.clock.Now().Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)

	// Raw, to see the exact create answer.
	r := w.do("POST", "/v1/apps/"+w.appA.ID+"/keys", w.ownerTok, map[string]any{"name": "ci", "expires_at": exp.Format(time.RFC3339)}).WantStatus(http.StatusCreated)
	created := r.JSON()
	plain, _ := created["key"].(string)
	if err := apikey.Parse(plain); err != nil {
		t.Fatalf("create answered key %q: %v", plain, err)
	}
	keyID, _ := created["id"].(string)
	if !strings.HasPrefix(keyID, "key_") || created["app_id"] != w.appA.ID || created["state"] != "active" ||
		created["name"] != "ci" || created["prefix"] != plain[:10] || created["orphan_reason"] != nil || created["created_by"] != w.ownerID {
		t.Fatalf("create answer: %s", r.Body)
	}
	if got, _ := time.Parse(time.RFC3339, created["expires_at"].(string)); !got.Equal(exp) {
		t.Fatalf("expires_at %v, want %v", created["expires_at"], exp)
	}

	// Listed as active in both views, the key itself never.
	for _, path := range []string{"/v1/keys", "/v1/keys?state=active", "/v1/apps/" + w.appA.ID + "/keys", "/v1/apps/" + w.appA.ID + "/keys?state=active"} {
		lr := w.do("GET", path, w.ownerTok, nil).WantStatus(http.StatusOK)
		if strings.Contains(string(lr.Body), plain) || strings.Contains(string(lr.Body), plain[10:]) {
			t.Fatalf("GET %s shows the key: %s", path, lr.Body)
		}
		var list struct{ Keys []map[string]any }
		lr.Into(&list)
		if len(list.Keys) != 1 || list.Keys[0]["id"] != keyID || list.Keys[0]["state"] != "active" {
			t.Fatalf("GET %s: %s", path, lr.Body)
		}
		if _, ok := list.Keys[0]["key"]; ok {
			t.Fatalf("GET %s lists a key field: %s", path, lr.Body)
		}
	}
	if keys, err := w.owner.ListKeys(ctx(t), client.StateOrphaned); err != nil || len(keys) != 0 {
		t.Fatalf("orphaned list: %v %v", keys, err)
	}
	if keys, err := w.owner.ListAppKeys(ctx(t), w.appB.ID, client.StateAny); err != nil || len(keys) != 0 {
		t.Fatalf("app B's list: %v %v", keys, err)
	}

	// Verify: the exact wire answer for VALID.
	vr := w.do("POST", "/v1/verify", w.appA.VerifierToken, map[string]string{"key": plain}).WantStatus(http.StatusOK).JSON()
	if vr["valid"] != true || vr["code"] != "VALID" || vr["key_id"] != keyID || vr["key_name"] != "ci" || vr["app_id"] != w.appA.ID {
		t.Fatalf("verify with app A: %v", vr)
	}
	if got, _ := time.Parse(time.RFC3339, vr["expires_at"].(string)); !got.Equal(exp) {
		t.Fatalf("verify expires_at %v, want %v", vr["expires_at"], exp)
	}
	unknown, err := apikey.Generate()
	must(t, err)
	for _, c := range []struct {
		name   string
		v      *client.Client
		key    string
		want   client.VerifyCode
		withID bool
	}{
		{"other app", w.verB, plain, client.VerifyWrongApp, false},
		{"malformed", w.verA, "cak_nope", client.VerifyMalformed, false},
		{"bad checksum", w.verA, plain[:len(plain)-1] + flip(plain[len(plain)-1]), client.VerifyMalformed, false},
		{"empty", w.verA, "", client.VerifyMalformed, false},
		{"unknown", w.verA, unknown, client.VerifyNotFound, false},
	} {
		res := w.verify(c.v, c.key)
		if res.Valid || res.Code != c.want || res.KeyID != "" {
			t.Errorf("%s: verify = %+v, want %s and no key details", c.name, res, c.want)
		}
	}

	// Revoke: 204, then REVOKED, gone from every list, and never again.
	w.do("DELETE", "/v1/keys/"+keyID, w.ownerTok, nil).WantStatus(http.StatusNoContent)
	if res := w.verify(w.verA, plain); res.Valid || res.Code != client.VerifyRevoked || res.KeyID != keyID {
		t.Fatalf("after revoke: %+v", res)
	}
	for _, st := range []client.KeyState{client.StateAny, client.StateActive, client.StateOrphaned, client.StateExpired} {
		keys, err := w.owner.ListKeys(ctx(t), st)
		must(t, err)
		akeys, err := w.owner.ListAppKeys(ctx(t), w.appA.ID, st)
		must(t, err)
		if len(keys)+len(akeys) != 0 {
			t.Fatalf("revoked key still listed in state %q: %v %v", st, keys, akeys)
		}
	}
	w.do("DELETE", "/v1/keys/"+keyID, w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")
	apps, err := w.owner.ListApps(ctx(t))
	must(t, err)
	for _, a := range apps {
		if a.ActiveKeys != 0 || a.OrphanedKeys != 0 {
			t.Fatalf("app counts after revoke: %+v", a)
		}
	}

	// Expiry, by the injected clock.
	soon, err := w.owner.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "short", ExpiresAt: w.clock.Now().Add(time.Hour)})
	must(t, err)
	if res := w.verify(w.verA, soon.PlainKey); res.Code != client.VerifyValid {
		t.Fatalf("fresh key: %+v", res)
	}
	w.clock.Advance(61 * time.Minute)
	if res := w.verify(w.verA, soon.PlainKey); res.Valid || res.Code != client.VerifyExpired || res.KeyID != soon.ID {
		t.Fatalf("expired key: %+v", res)
	}
	keys, err := w.owner.ListKeys(ctx(t), client.StateAny)
	must(t, err)
	if len(keys) != 1 || keys[0].ID != soon.ID || keys[0].State != client.StateExpired {
		t.Fatalf("expired key listed as %+v", keys)
	}
	for st, n := range map[client.KeyState]int{client.StateExpired: 1, client.StateActive: 0, client.StateOrphaned: 0} {
		if keys, err := w.owner.ListAppKeys(ctx(t), w.appA.ID, st); err != nil || len(keys) != n {
			t.Fatalf("state=%s lists %v (%v), want %d", st, keys, err, n)
		}
	}
	a, err := w.owner.GetApp(ctx(t), w.appA.ID)
	must(t, err)
	if a.ActiveKeys != 0 || a.OrphanedKeys != 0 {
		t.Fatalf("an expired key counts: %+v", a)
	}
	// An expired key can still be revoked by a member (it is not orphaned).
	must(t, w.member.RevokeKey(ctx(t), soon.ID))
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestOrphanedByAppDeletion(t *testing.T) {
	w := newWorld(t)
	k1 := w.createKey(w.member, w.appA.ID, "one")
	k2 := w.createKey(w.owner, w.appA.ID, "two")
	k3 := w.createKey(w.owner, w.appA.ID, "three")
	kb := w.createKey(w.owner, w.appB.ID, "b")

	apps, err := w.owner.ListApps(ctx(t))
	must(t, err)
	if got := appCounts(apps); got[w.appA.ID] != [2]int{3, 0} || got[w.appB.ID] != [2]int{1, 0} {
		t.Fatalf("counts before: %v", got)
	}

	w.do("DELETE", "/v1/apps/"+w.appA.ID, w.memTok, nil).WantStatus(http.StatusNoContent)
	w.do("GET", "/v1/apps/"+w.appA.ID, w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")
	w.do("DELETE", "/v1/apps/"+w.appA.ID, w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")

	for _, path := range []string{"/v1/keys?state=orphaned", "/v1/apps/" + w.appA.ID + "/keys?state=orphaned", "/v1/apps/" + w.appA.ID + "/keys"} {
		var list struct{ Keys []client.Key }
		w.do("GET", path, w.ownerTok, nil).WantStatus(http.StatusOK).Into(&list)
		if len(list.Keys) != 3 {
			t.Fatalf("GET %s: %d keys, want 3: %+v", path, len(list.Keys), list.Keys)
		}
		for _, k := range list.Keys {
			if k.State != client.StateOrphaned || k.OrphanReason != client.OrphanAppDeleted || k.AppID != w.appA.ID {
				t.Fatalf("GET %s: %+v", path, k)
			}
		}
	}
	active, err := w.owner.ListKeys(ctx(t), client.StateActive)
	must(t, err)
	if len(active) != 1 || active[0].ID != kb.ID {
		t.Fatalf("active keys after deleting app A: %+v", active)
	}
	apps, err = w.owner.ListApps(ctx(t))
	must(t, err)
	if got := appCounts(apps); len(got) != 1 || got[w.appB.ID] != [2]int{1, 0} {
		t.Fatalf("apps after deleting A: %v", got)
	}

	// The deleted app's sidecar still asks, and hears ORPHANED.
	var v struct {
		Valid bool   `json:"valid"`
		Code  string `json:"code"`
		KeyID string `json:"key_id"`
	}
	w.do("POST", "/v1/verify", w.appA.VerifierToken, map[string]string{"key": k1.PlainKey}).WantStatus(http.StatusOK).Into(&v)
	if v.Valid || v.Code != keyservice.CodeOrphaned || v.KeyID != k1.ID {
		t.Fatalf("orphaned key's verdict: %+v", v)
	}
	srv := w.svc.Server
	rec, err := srv.Store.GetKey(ctx(t), mustOrg(t, w), k1.ID)
	must(t, err)
	if rec.OrphanReason != store.OrphanAppDeleted || rec.OrphanedAt == nil || rec.RevokedAt != nil {
		t.Fatalf("stored key: %+v", rec)
	}
	// App B's sidecar hears nothing of it either.
	if res := w.verify(w.verB, k1.PlainKey); res.Valid || res.Code != client.VerifyWrongApp {
		t.Fatalf("app B verifying an orphaned key of A: %+v", res)
	}

	// Revoking orphaned keys: members may not, aura owners and owners may.
	w.do("DELETE", "/v1/keys/"+k1.ID, w.memTok, nil).WantError(http.StatusForbidden, "forbidden")
	w.do("DELETE", "/v1/keys/"+k1.ID, w.auraTok, nil).WantStatus(http.StatusNoContent)
	w.do("DELETE", "/v1/keys/"+k2.ID, w.memTok, nil).WantError(http.StatusForbidden, "forbidden")
	w.do("DELETE", "/v1/keys/"+k2.ID, w.ownerTok, nil).WantStatus(http.StatusNoContent)
	orphans, err := w.owner.ListKeys(ctx(t), client.StateOrphaned)
	must(t, err)
	if len(orphans) != 1 || orphans[0].ID != k3.ID {
		t.Fatalf("orphans after two revokes: %+v", orphans)
	}
	w.do("POST", "/v1/verify", w.appA.VerifierToken, map[string]string{"key": k1.PlainKey}).WantStatus(http.StatusOK).Into(&v)
	if v.Code != keyservice.CodeRevoked {
		t.Fatalf("revoked orphan's verdict: %+v", v)
	}
}

func TestOrphanedByCreatorDeletion(t *testing.T) {
	w := newWorld(t)
	doomed := w.createUser(w.owner, "leaver@example.com", client.RoleMember)
	leaver := w.client(doomed.Token)
	kl := w.createKey(leaver, w.appA.ID, "leavers")
	ko := w.createKey(w.owner, w.appA.ID, "owners")
	kl2 := w.createKey(leaver, w.appB.ID, "leavers-b")

	w.do("DELETE", "/v1/users/"+doomed.ID, w.auraTok, nil).WantStatus(http.StatusNoContent)

	// The deleted user's token no longer works.
	w.do("GET", "/v1/me", doomed.Token, nil).WantError(http.StatusUnauthorized, "unauthorized")
	users, err := w.owner.ListUsers(ctx(t))
	must(t, err)
	for _, u := range users {
		if u.ID == doomed.ID {
			t.Fatalf("deleted user still listed: %+v", users)
		}
	}

	// The app still stands, so its sidecar asks and hears ORPHANED.
	if res := w.verify(w.verA, kl.PlainKey); res.Valid || res.Code != client.VerifyOrphaned || res.KeyID != kl.ID {
		t.Fatalf("verify of a key whose creator left: %+v", res)
	}
	if res := w.verify(w.verB, kl2.PlainKey); res.Valid || res.Code != client.VerifyOrphaned {
		t.Fatalf("verify of the leaver's other key: %+v", res)
	}
	if res := w.verify(w.verA, ko.PlainKey); !res.Valid || res.Code != client.VerifyValid {
		t.Fatalf("another user's key on the same app: %+v", res)
	}
	for _, path := range []string{"/v1/keys?state=orphaned", "/v1/apps/" + w.appA.ID + "/keys?state=orphaned"} {
		var list struct{ Keys []client.Key }
		w.do("GET", path, w.memTok, nil).WantStatus(http.StatusOK).Into(&list)
		found := false
		for _, k := range list.Keys {
			if k.ID == ko.ID {
				t.Fatalf("GET %s lists the owner's key as orphaned", path)
			}
			if k.ID == kl.ID {
				found = k.State == client.StateOrphaned && k.OrphanReason == client.OrphanCreatorDeleted
			}
		}
		if !found {
			t.Fatalf("GET %s: %+v", path, list.Keys)
		}
	}
	apps, err := w.owner.ListApps(ctx(t))
	must(t, err)
	if got := appCounts(apps); got[w.appA.ID] != [2]int{1, 1} || got[w.appB.ID] != [2]int{0, 1} {
		t.Fatalf("counts after the creator left: %v", got)
	}
	a, err := w.member.GetApp(ctx(t), w.appA.ID)
	must(t, err)
	if a.ActiveKeys != 1 || a.OrphanedKeys != 1 {
		t.Fatalf("GET app: %+v", a)
	}

	w.do("DELETE", "/v1/keys/"+kl.ID, w.memTok, nil).WantError(http.StatusForbidden, "forbidden")
	w.do("DELETE", "/v1/keys/"+kl.ID, w.ownerTok, nil).WantStatus(http.StatusNoContent)
	w.do("DELETE", "/v1/keys/"+kl2.ID, w.auraTok, nil).WantStatus(http.StatusNoContent)
	if res := w.verify(w.verA, kl.PlainKey); res.Code != client.VerifyRevoked {
		t.Fatalf("after revoking the orphan: %+v", res)
	}
	apps, err = w.owner.ListApps(ctx(t))
	must(t, err)
	if got := appCounts(apps); got[w.appA.ID] != [2]int{1, 0} || got[w.appB.ID] != [2]int{0, 0} {
		t.Fatalf("counts after revoking the orphans: %v", got)
	}
}

func appCounts(apps []client.App) map[string][2]int {
	m := map[string][2]int{}
	for _, a := range apps {
		m[a.ID] = [2]int{a.ActiveKeys, a.OrphanedKeys}
	}
	return m
}

func mustOrg(t *testing.T, w *world) string {
	t.Helper()
	me, err := w.owner.Me(ctx(t))
	must(t, err)
	return me.OrgID
}

func TestSaveAsSecret(t *testing.T) {
	w := newWorld(t)
	exp := w.clock.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	r := w.do("POST", "/v1/apps/"+w.appA.ID+"/keys", w.memTok, map[string]any{"name": "stored", "expires_at": exp, "save_as_secret": "APP_A_KEY"}).WantStatus(http.StatusCreated)
	created := r.JSON()
	if _, ok := created["key"]; ok {
		t.Fatalf("create with save_as_secret answered a key field: %s", r.Body)
	}
	if created["secret_name"] != "APP_A_KEY" || created["state"] != "active" {
		t.Fatalf("create answer: %s", r.Body)
	}
	keyID := created["id"].(string)

	sec, err := w.member.GetSecret(ctx(t), "APP_A_KEY")
	must(t, err)
	if err := apikey.Parse(sec.Value); err != nil {
		t.Fatalf("the secret holds %q: %v", sec.Value, err)
	}
	if strings.Contains(string(r.Body), sec.Value) || strings.Contains(string(r.Body), sec.Value[4:]) {
		t.Fatalf("the create answer contains the key: %s", r.Body)
	}
	if res := w.verify(w.verA, sec.Value); !res.Valid || res.Code != client.VerifyValid || res.KeyID != keyID {
		t.Fatalf("verify of the saved key: %+v", res)
	}
	secs, err := w.owner.ListSecrets(ctx(t))
	must(t, err)
	if len(secs) != 1 || secs[0].Name != "APP_A_KEY" {
		t.Fatalf("secrets: %+v", secs)
	}
	if body := w.do("GET", "/v1/secrets", w.ownerTok, nil).WantStatus(http.StatusOK).Body; strings.Contains(string(body), sec.Value) {
		t.Fatalf("the secrets list shows the value: %s", body)
	}

	// A taken secret name refuses the whole create: no key without its secret.
	w.do("POST", "/v1/apps/"+w.appA.ID+"/keys", w.memTok, map[string]any{"name": "again", "expires_at": exp, "save_as_secret": "APP_A_KEY"}).WantError(http.StatusConflict, "conflict")
	keys, err := w.owner.ListKeys(ctx(t), client.StateAny)
	must(t, err)
	if len(keys) != 1 || keys[0].ID != keyID {
		t.Fatalf("a refused create left keys behind: %+v", keys)
	}
	again, err := w.owner.GetSecret(ctx(t), "APP_A_KEY")
	must(t, err)
	if again.Value != sec.Value {
		t.Fatal("a refused create overwrote the secret")
	}
}

func TestLastUsedAt(t *testing.T) {
	w := newWorld(t)
	k := w.createKey(w.owner, w.appA.ID, "used")
	keys, err := w.owner.ListKeys(ctx(t), client.StateAny)
	must(t, err)
	if len(keys) != 1 || keys[0].LastUsedAt != nil {
		t.Fatalf("unused key: %+v", keys)
	}
	before := w.clock.Now().Add(-time.Second)
	if res := w.verify(w.verA, k.PlainKey); !res.Valid {
		t.Fatalf("verify: %+v", res)
	}
	// Failed verdicts do not count as use.
	if res := w.verify(w.verB, k.PlainKey); res.Valid {
		t.Fatalf("verify with B: %+v", res)
	}
	for _, list := range []func() ([]client.Key, error){
		func() ([]client.Key, error) { return w.owner.ListKeys(ctx(t), client.StateActive) },
		func() ([]client.Key, error) { return w.member.ListAppKeys(ctx(t), w.appA.ID, client.StateAny) },
	} {
		keys, err := list()
		must(t, err)
		if len(keys) != 1 || keys[0].LastUsedAt == nil || keys[0].LastUsedAt.Before(before) {
			t.Fatalf("after a VALID verify, listed %+v", keys)
		}
	}
	srv := w.svc.Server
	org := mustOrg(t, w)
	rec, err := srv.Store.GetKey(ctx(t), org, k.ID)
	must(t, err)
	if rec.LastUsedAt != nil {
		t.Fatalf("last_used_at written before the flush: %v (a write per verify?)", rec.LastUsedAt)
	}
	srv.Service.FlushUsage(ctx(t))
	rec, err = srv.Store.GetKey(ctx(t), org, k.ID)
	must(t, err)
	if rec.LastUsedAt == nil || rec.LastUsedAt.Before(before) {
		t.Fatalf("after the flush the store has %v", rec.LastUsedAt)
	}
	// And it survives a restart.
	w.svc.Restart()
	keys, err = w.owner.ListKeys(ctx(t), client.StateAny)
	must(t, err)
	if len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(*rec.LastUsedAt) {
		t.Fatalf("after restart: %+v", keys)
	}
}
