package httpapi_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// rollAnswer is POST /v1/keys/{id}/roll's answer as the wire has it.
type rollAnswer struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	AppID      string   `json:"app_id"`
	State      string   `json:"state"`
	ExpiresAt  string   `json:"expires_at"`
	RolledFrom string   `json:"rolled_from"`
	RolledTo   string   `json:"rolled_to"`
	Key        string   `json:"key"`
	Secrets    []string `json:"secrets"`
	Previous   struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		ExpiresAt string `json:"expires_at"`
	} `json:"previous"`
}

func (w *world) rollBody(expires time.Duration, overlap string) map[string]any {
	return map[string]any{"expires_at": w.clock.Now().Add(expires).UTC().Format(time.RFC3339), "overlap": overlap}
}

func (w *world) roll(token, id string, body map[string]any) *rollAnswer {
	w.t.Helper()
	var a rollAnswer
	w.do("POST", "/v1/keys/"+id+"/roll", token, body).WantStatus(http.StatusCreated).Into(&a)
	return &a
}

func (w *world) keyByID(by *client.Client, id string) (client.Key, bool) {
	w.t.Helper()
	keys, err := by.ListKeys(ctx(w.t), "")
	must(w.t, err)
	k, ok := keyIDs(keys)[id]
	return k, ok
}

// The promise: a roll makes a new key for the same app and name, the old
// one keeps working until the overlap ends, and both are linked.
func TestRollKey(t *testing.T) {
	w := newWorld(t)
	old := w.createKey(w.member, w.appA.ID, "ci")
	before := w.clock.Now()
	a := w.roll(w.memTok, old.ID, w.rollBody(90*24*time.Hour, "24h"))
	if a.ID == old.ID || a.Name != "ci" || a.AppID != w.appA.ID || a.State != "active" || a.RolledFrom != old.ID || a.RolledTo != "" {
		t.Fatalf("roll answered %+v", a)
	}
	if !strings.HasPrefix(a.Key, "cak_") || len(a.Secrets) != 0 {
		t.Fatalf("the roll's answer shows no new key: %+v", a)
	}
	prevExp, err := time.Parse(time.RFC3339, a.Previous.ExpiresAt)
	must(t, err)
	if a.Previous.ID != old.ID || a.Previous.State != "active" || prevExp.Before(before.Add(24*time.Hour)) || prevExp.After(w.clock.Now().Add(24*time.Hour+time.Second)) {
		t.Fatalf("previous = %+v, want the old key until now+24h", a.Previous)
	}
	if v := w.verify(w.verA, old.PlainKey); v.Code != client.VerifyValid || !v.ExpiresAt.Equal(prevExp) {
		t.Fatalf("old key during the overlap: %+v", v)
	}
	if v := w.verify(w.verA, a.Key); v.Code != client.VerifyValid || v.KeyID != a.ID {
		t.Fatalf("new key: %+v", v)
	}
	ok, _ := w.keyByID(w.owner, old.ID)
	nk, _ := w.keyByID(w.owner, a.ID)
	if ok.RolledTo != a.ID || ok.RolledFrom != "" || nk.RolledFrom != old.ID || !ok.ExpiresAt.Equal(prevExp) {
		t.Fatalf("listed: old %+v new %+v", ok, nk)
	}
	// The overlap ends: the old key is refused, the new one still works.
	w.clock.Advance(24*time.Hour + 2*time.Second)
	if v := w.verify(w.verA, old.PlainKey); v.Code != client.VerifyExpired {
		t.Fatalf("old key after the overlap: %+v", v)
	}
	if v := w.verify(w.verA, a.Key); v.Code != client.VerifyValid {
		t.Fatalf("new key after the overlap: %+v", v)
	}
	// The feed told the sidecars the old key's new expiry.
	page, err := w.verA.Events(ctx(t), 0, 0)
	must(t, err)
	var found bool
	for _, e := range page.Events {
		if e.Type == client.EventKeyExpiryChanged && e.KeyID == old.ID && e.ExpiresAt != nil && e.ExpiresAt.Equal(prevExp) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no key.expiry_changed event for %s: %+v", old.ID, page.Events)
	}
}

// Attack: an owner of another organization rolls my key. It is not there
// for them (404), and my key is untouched.
func TestRollAnotherOrgsKey(t *testing.T) {
	w := newWorld(t)
	mine := w.createKey(w.owner, w.appA.ID, "mine")
	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "o@other.example"})
	must(t, err)
	w.do("POST", "/v1/keys/"+mine.ID+"/roll", org2.Owner.Token, w.rollBody(time.Hour, "0s")).WantError(http.StatusNotFound, "not_found")
	w.do("POST", "/v1/keys/"+mine.ID+"/roll", w.appA.VerifierToken, w.rollBody(time.Hour, "0s")).WantError(http.StatusForbidden, "")
	w.do("POST", "/v1/keys/"+mine.ID+"/roll", "", w.rollBody(time.Hour, "0s")).WantError(http.StatusUnauthorized, "")
	k, ok := w.keyByID(w.owner, mine.ID)
	if !ok || k.RolledTo != "" || k.State != client.StateActive {
		t.Fatalf("my key after another org's roll: %+v (listed %v)", k, ok)
	}
	if v := w.verify(w.verA, mine.PlainKey); v.Code != client.VerifyValid {
		t.Fatalf("my key after another org's roll: %+v", v)
	}
}

// Attack: keys that are not active are rolled back to life. An orphaned key
// is to be revoked, not rolled (whoever asks); an expired, revoked or
// already rolled key never comes back.
func TestRollOnlyActiveKeys(t *testing.T) {
	w := newWorld(t)
	u := w.createUser(w.owner, "gone@example.com", client.RoleMember)
	orphan := w.createKey(w.client(u.Token), w.appA.ID, "orphan")
	must(t, w.owner.DeleteUser(ctx(t), u.ID))
	revoked := w.createKey(w.owner, w.appA.ID, "revoked")
	must(t, w.owner.RevokeKey(ctx(t), revoked.ID))
	expiring, err := w.owner.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "expiring", ExpiresAt: w.clock.Now().Add(time.Hour)})
	must(t, err)
	rolled := w.createKey(w.owner, w.appA.ID, "rolled")
	w.roll(w.ownerTok, rolled.ID, w.rollBody(time.Hour, "1h"))
	w.clock.Advance(time.Hour + time.Minute)

	for _, tc := range []struct {
		name, id, token, want string
	}{
		{"member rolls an orphaned key", orphan.ID, w.memTok, "revoke"},
		{"owner rolls an orphaned key", orphan.ID, w.ownerTok, "revoke"},
		{"revoked key", revoked.ID, w.ownerTok, "revoked"},
		{"expired key", expiring.ID, w.ownerTok, "expired"},
		{"already rolled key", rolled.ID, w.ownerTok, "rolled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := doHTTP(t, w.svc.URL, "POST", "/v1/keys/"+tc.id+"/roll", tc.token, w.rollBody(time.Hour, "1h"))
			r.WantError(http.StatusConflict, "conflict")
			if msg := r.JSON()["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.want) {
				t.Fatalf("message %q does not say %q", msg, tc.want)
			}
		})
	}
	for _, k := range []*client.CreatedKey{orphan, revoked, expiring} {
		if v := w.verify(w.verA, k.PlainKey); v.Valid {
			t.Fatalf("%s came back to life: %+v", k.Name, v)
		}
	}
}

// Attack: a roll extends a key that expires before the overlap's end. The
// old key keeps its own, earlier expiry, and no expiry event claims
// otherwise.
func TestRollNeverExtends(t *testing.T) {
	w := newWorld(t)
	k, err := w.owner.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "soon", ExpiresAt: w.clock.Now().Add(time.Hour)})
	must(t, err)
	head, err := w.verA.EventsHead(ctx(t))
	must(t, err)
	a := w.roll(w.ownerTok, k.ID, w.rollBody(30*24*time.Hour, "720h"))
	prev, err := time.Parse(time.RFC3339, a.Previous.ExpiresAt)
	must(t, err)
	if !prev.Equal(k.ExpiresAt) {
		t.Fatalf("the old key's expiry moved from %v to %v", k.ExpiresAt, prev)
	}
	page, err := w.verA.Events(ctx(t), head, 0)
	must(t, err)
	for _, e := range page.Events {
		if e.KeyID == k.ID {
			t.Fatalf("an event for a key whose expiry did not change: %+v", e)
		}
	}
	w.clock.Advance(time.Hour + time.Second)
	if v := w.verify(w.verA, k.PlainKey); v.Code != client.VerifyExpired {
		t.Fatalf("old key past its own expiry: %+v", v)
	}
}

// overlap 0 revokes the old key at once, as a revocation does.
func TestRollOverlapZeroRevokes(t *testing.T) {
	w := newWorld(t)
	k := w.createKey(w.owner, w.appA.ID, "now")
	head, err := w.verA.EventsHead(ctx(t))
	must(t, err)
	a := w.roll(w.ownerTok, k.ID, w.rollBody(time.Hour, "0s"))
	if a.Previous.State != "revoked" {
		t.Fatalf("previous = %+v, want revoked", a.Previous)
	}
	if v := w.verify(w.verA, k.PlainKey); v.Code != client.VerifyRevoked {
		t.Fatalf("old key after a roll without overlap: %+v", v)
	}
	page, err := w.verA.Events(ctx(t), head, 0)
	must(t, err)
	if len(page.Events) != 1 || page.Events[0].Type != client.EventKeyRevoked || page.Events[0].KeyID != k.ID {
		t.Fatalf("events = %+v, want one key.revoked", page.Events)
	}
	if _, listed := w.keyByID(w.owner, k.ID); listed {
		t.Fatal("a revoked key is still listed")
	}
	// Its name is the new key's: a second key of that name is refused.
	_, err = w.owner.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "now", ExpiresAt: w.clock.Now().Add(time.Hour)})
	wantAPIError(t, err, http.StatusConflict, "conflict")
}

// A roll's expiry is bounded as a creation's; the overlap is required and
// not negative.
func TestRollRefusesBadBodies(t *testing.T) {
	w := newWorld(t)
	k := w.createKey(w.owner, w.appA.ID, "k")
	exp := w.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name   string
		body   any
		status int
	}{
		{"no expiry", map[string]any{"overlap": "1h"}, 422},
		{"past expiry", map[string]any{"expires_at": w.clock.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "overlap": "1h"}, 422},
		{"expiry too far", map[string]any{"expires_at": w.clock.Now().Add(400 * 24 * time.Hour).UTC().Format(time.RFC3339), "overlap": "1h"}, 422},
		{"no overlap", map[string]any{"expires_at": exp}, 422},
		{"negative overlap", map[string]any{"expires_at": exp, "overlap": "-1h"}, 422},
		{"garbled overlap", map[string]any{"expires_at": exp, "overlap": "soon"}, 400},
		{"bad secret name", map[string]any{"expires_at": exp, "overlap": "1h", "save_as_secret": "a b"}, 422},
		{"unknown field", map[string]any{"expires_at": exp, "overlap": "1h", "extend": true}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doHTTP(t, w.svc.URL, "POST", "/v1/keys/"+k.ID+"/roll", w.ownerTok, tc.body).WantError(tc.status, "")
		})
	}
	if got, _ := w.keyByID(w.owner, k.ID); got.RolledTo != "" || !got.ExpiresAt.Equal(k.ExpiresAt) {
		t.Fatalf("a refused roll changed the key: %+v", got)
	}
}

// Attack: two operators roll one key at once. Exactly one roll wins; the
// others are told it was rolled, and the app ends with one new key of that
// name, not several.
func TestRollConcurrent(t *testing.T) {
	w := newWorld(t)
	k := w.createKey(w.owner, w.appA.ID, "busy")
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			tok := []string{w.ownerTok, w.auraTok, w.memTok}[i%3]
			statuses[i] = w.do("POST", "/v1/keys/"+k.ID+"/roll", tok, w.rollBody(time.Hour, "1h")).Status
		})
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			won++
		case http.StatusConflict:
		default:
			t.Fatalf("a concurrent roll answered %d (all: %v)", s, statuses)
		}
	}
	if won != 1 {
		t.Fatalf("%d rolls won, want exactly 1 (statuses %v)", won, statuses)
	}
	keys, err := w.owner.ListAppKeys(ctx(t), w.appA.ID, "")
	must(t, err)
	named := 0
	for _, x := range keys {
		if x.Name == "busy" {
			named++
		}
	}
	if named != 2 {
		t.Fatalf("%d keys named busy, want the old and one new: %+v", named, keys)
	}
}

// Secrets follow the roll: one the key was saved in at creation, and one
// the roll names, get the new key in the same transaction; the answer does
// not show it; the audit log says so without the key.
func TestRollSecretsFollow(t *testing.T) {
	w := newWorld(t)
	k, err := w.member.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "saved", ExpiresAt: w.clock.Now().Add(time.Hour), SaveAsSecret: "APP_KEY"})
	must(t, err)
	oldVal, err := w.member.GetSecret(ctx(t), "APP_KEY")
	must(t, err)
	body := w.rollBody(2*time.Hour, "1m")
	body["save_as_secret"] = "APP_KEY_COPY"
	a := w.roll(w.memTok, k.ID, body)
	if a.Key != "" || strings.Join(a.Secrets, ",") != "APP_KEY,APP_KEY_COPY" {
		t.Fatalf("roll answered key %q secrets %v; want no key, both secrets", a.Key, a.Secrets)
	}
	for _, name := range a.Secrets {
		v, err := w.member.GetSecret(ctx(t), name)
		must(t, err)
		if v.Value == oldVal.Value {
			t.Fatalf("secret %s still holds the old key", name)
		}
		if r := w.verify(w.verA, v.Value); r.KeyID != a.ID || r.Code != client.VerifyValid {
			t.Fatalf("secret %s holds %+v, want the new key %s", name, r, a.ID)
		}
	}
	// A second roll finds both secrets again.
	b := w.roll(w.memTok, a.ID, w.rollBody(2*time.Hour, "1m"))
	if strings.Join(b.Secrets, ",") != "APP_KEY,APP_KEY_COPY" {
		t.Fatalf("second roll updated %v", b.Secrets)
	}
	audit := w.do("GET", "/v1/audit?limit=100", w.ownerTok, nil).WantStatus(http.StatusOK)
	for _, want := range []string{`"key.roll"`, `"secret.update"`, "APP_KEY_COPY", b.ID} {
		if !strings.Contains(string(audit.Body), want) {
			t.Errorf("the audit log lacks %s: %s", want, audit.Body)
		}
	}
	// A secret that holds something else is not overwritten.
	_, err = w.owner.CreateSecret(ctx(t), client.CreateSecretRequest{Name: "DB_PASSWORD", Value: "hunter2"})
	must(t, err)
	other := w.createKey(w.owner, w.appA.ID, "other")
	body = w.rollBody(time.Hour, "1m")
	body["save_as_secret"] = "DB_PASSWORD"
	w.do("POST", "/v1/keys/"+other.ID+"/roll", w.ownerTok, body).WantError(http.StatusConflict, "conflict")
	if v, err := w.owner.GetSecret(ctx(t), "DB_PASSWORD"); err != nil || v.Value != "hunter2" {
		t.Fatalf("DB_PASSWORD = %+v, %v", v, err)
	}
	if got, _ := w.keyByID(w.owner, other.ID); got.RolledTo != "" {
		t.Fatalf("a refused roll rolled the key: %+v", got)
	}
}
