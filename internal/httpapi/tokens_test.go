package httpapi_test

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// mintVerifier mints a verifier token for app over the raw API and returns
// the answer's fields.
func (w *world) mintVerifier(token, appID string, overlap string) map[string]any {
	w.t.Helper()
	return w.do("POST", "/v1/apps/"+appID+"/verifier-tokens", token, map[string]string{"overlap": overlap}).WantStatus(http.StatusCreated).JSON()
}

func (w *world) verifierTokens(token, appID string) []map[string]any {
	w.t.Helper()
	var out struct {
		VerifierTokens []map[string]any `json:"verifier_tokens"`
	}
	w.do("GET", "/v1/apps/"+appID+"/verifier-tokens", token, nil).WantStatus(http.StatusOK).Into(&out)
	return out.VerifierTokens
}

// Rotating a verifier token: the old one works through the overlap and not
// a moment after; a third token cannot keep an old one alive; the current
// one cannot be retired; a retired or expired token is 401 on verify and
// the feed; a new token of app A is app A's alone; another organization
// sees nothing.
func TestVerifierTokenRotation(t *testing.T) {
	w := newWorld(t)
	keyA := w.createKey(w.owner, w.appA.ID, "a")
	keyB := w.createKey(w.owner, w.appB.ID, "b")
	old := w.appA.VerifierToken
	list := w.verifierTokens(w.ownerTok, w.appA.ID)
	if len(list) != 1 || list[0]["expires_at"] != nil {
		t.Fatalf("a new app's verifier tokens: %v", list)
	}
	oldID := list[0]["id"].(string)

	minted := w.mintVerifier(w.memTok, w.appA.ID, "1h") // any role that may manage the app
	fresh, _ := minted["token"].(string)
	if len(fresh) < 40 || fresh[:4] != "akv_" || minted["prefix"] != fresh[:10] || minted["expires_at"] != nil {
		t.Fatalf("mint answered %v", minted)
	}
	wantEnd := w.clock.Now().Add(time.Hour)
	prevEnd, err := time.Parse(time.RFC3339Nano, minted["previous_expires_at"].(string))
	if err != nil || minted["previous_id"] != oldID || prevEnd.Sub(wantEnd).Abs() > 5*time.Second {
		t.Fatalf("the previous token's end: %v (want about %s)", minted, wantEnd)
	}

	// During the overlap both tokens verify app A's keys; the new one is
	// app A's alone.
	for _, tok := range []string{old, fresh} {
		v := w.verify(w.client(tok), keyA.PlainKey)
		if v.Code != "VALID" {
			t.Fatalf("during the overlap: %s", v.Code)
		}
		if v := w.verify(w.client(tok), keyB.PlainKey); v.Code != "WRONG_APP" {
			t.Fatalf("app A's token on app B's key: %s", v.Code)
		}
		w.do("GET", "/v1/events?after=0", tok, nil).WantStatus(http.StatusOK)
	}

	// A third token while the previous one counts down: refused, and the
	// previous one's end does not move.
	w.do("POST", "/v1/apps/"+w.appA.ID+"/verifier-tokens", w.ownerTok, map[string]string{"overlap": "168h"}).WantError(http.StatusConflict, "conflict")
	list = w.verifierTokens(w.ownerTok, w.appA.ID)
	if len(list) != 2 || list[0]["id"] != oldID || list[0]["expires_at"] != minted["previous_expires_at"] || list[1]["id"] != minted["id"] {
		t.Fatalf("after a refused third mint: %v", list)
	}
	// The current token cannot be retired.
	w.do("DELETE", "/v1/apps/"+w.appA.ID+"/verifier-tokens/"+minted["id"].(string), w.ownerTok, nil).WantError(http.StatusConflict, "conflict")

	// The overlap ends: the old token is 401 on verify and on the feed.
	w.clock.Advance(time.Hour + time.Second)
	w.do("POST", "/v1/verify", old, map[string]string{"key": keyA.PlainKey}).WantError(http.StatusUnauthorized, "unauthorized")
	w.do("GET", "/v1/events?after=0", old, nil).WantError(http.StatusUnauthorized, "unauthorized")
	if v := w.verify(w.client(fresh), keyA.PlainKey); v.Code != "VALID" {
		t.Fatalf("the new token after the overlap: %s", v.Code)
	}
	if list := w.verifierTokens(w.ownerTok, w.appA.ID); len(list) != 1 || list[0]["id"] != minted["id"] {
		t.Fatalf("after the overlap: %v", list)
	}

	// Retire at once: roll again, then retire the previous token.
	second := w.mintVerifier(w.auraTok, w.appA.ID, "7d")
	w.do("DELETE", "/v1/apps/"+w.appA.ID+"/verifier-tokens/"+minted["id"].(string), w.memTok, nil).WantStatus(http.StatusNoContent)
	w.do("POST", "/v1/verify", fresh, map[string]string{"key": keyA.PlainKey}).WantError(http.StatusUnauthorized, "unauthorized")
	w.do("GET", "/v1/events", fresh, nil).WantError(http.StatusUnauthorized, "unauthorized")
	if v := w.verify(w.client(second["token"].(string)), keyA.PlainKey); v.Code != "VALID" {
		t.Fatalf("the newest token: %s", v.Code)
	}
	// Overlap 0 replaces the current token at once.
	third := w.mintVerifier(w.ownerTok, w.appA.ID, "0s")
	if third["previous_id"] != second["id"] {
		t.Fatalf("overlap 0 answered %v", third)
	}
	w.do("POST", "/v1/verify", second["token"].(string), map[string]string{"key": keyA.PlainKey}).WantError(http.StatusUnauthorized, "unauthorized")

	// Bounds and shapes.
	for _, c := range []struct {
		body   any
		status int
	}{
		{map[string]string{"overlap": "169h"}, 422},
		{map[string]string{"overlap": "8d"}, 422},
		{map[string]string{"overlap": "-1s"}, 422},
		{map[string]string{"overlap": "soon"}, 400},
		{map[string]string{}, 422},
		{map[string]any{"overlap": "1h", "expires_at": "2030-01-01T00:00:00Z"}, 400},
	} {
		w.do("POST", "/v1/apps/"+w.appB.ID+"/verifier-tokens", w.ownerTok, c.body).WantError(c.status, "")
	}
}

// Another organization's app, its tokens and its ids are 404 whatever the
// caller tries; verifier and admin tokens cannot manage verifier tokens.
func TestVerifierTokensAcrossOrgs(t *testing.T) {
	w := newWorld(t)
	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Two", OwnerEmail: "two@example.com"})
	must(t, err)
	intruder := org2.Owner.Token
	theirApp := w.createApp(w.client(intruder), "theirs")
	mine := w.verifierTokens(w.ownerTok, w.appA.ID)[0]["id"].(string)
	theirs := w.verifierTokens(intruder, theirApp.ID)[0]["id"].(string)
	w.mintVerifier(w.ownerTok, w.appA.ID, "1h")
	base := "/v1/apps/" + w.appA.ID + "/verifier-tokens"
	w.do("GET", base, intruder, nil).WantError(http.StatusNotFound, "not_found")
	w.do("POST", base, intruder, map[string]string{"overlap": "0s"}).WantError(http.StatusNotFound, "not_found")
	w.do("DELETE", base+"/"+mine, intruder, nil).WantError(http.StatusNotFound, "not_found")
	// Their token id through our app, our token id through their app.
	w.do("DELETE", base+"/"+theirs, w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")
	w.do("DELETE", "/v1/apps/"+theirApp.ID+"/verifier-tokens/"+mine, intruder, nil).WantError(http.StatusNotFound, "not_found")
	w.do("DELETE", "/v1/apps/"+w.appB.ID+"/verifier-tokens/"+mine, w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")
	for _, tok := range []string{w.svc.AdminToken, w.appA.VerifierToken} {
		w.do("GET", base, tok, nil).WantError(http.StatusForbidden, "forbidden")
		w.do("POST", base, tok, map[string]string{"overlap": "0s"}).WantError(http.StatusForbidden, "forbidden")
		w.do("DELETE", base+"/"+mine, tok, nil).WantError(http.StatusForbidden, "forbidden")
	}
	// Nothing changed: our old token still verifies, two tokens are live.
	if v := w.verify(w.verA, w.createKey(w.owner, w.appA.ID, "k").PlainKey); v.Code != "VALID" {
		t.Fatalf("after the intruder: %s", v.Code)
	}
	if n := len(w.verifierTokens(w.ownerTok, w.appA.ID)); n != 2 {
		t.Fatalf("%d live tokens after the intruder, want 2", n)
	}
	// A deleted app's tokens cannot be managed.
	must(t, w.owner.DeleteApp(ctx(t), w.appB.ID))
	w.do("GET", "/v1/apps/"+w.appB.ID+"/verifier-tokens", w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")
	w.do("POST", "/v1/apps/"+w.appB.ID+"/verifier-tokens", w.ownerTok, map[string]string{"overlap": "0s"}).WantError(http.StatusNotFound, "not_found")
}

// The list shows when each token was last used, and never a token or hash;
// every mint and retire is audited.
func TestVerifierTokenListAndAudit(t *testing.T) {
	w := newWorld(t)
	minted := w.mintVerifier(w.ownerTok, w.appA.ID, "1h")
	key := w.createKey(w.owner, w.appA.ID, "k")
	w.verify(w.client(minted["token"].(string)), key.PlainKey)
	list := w.verifierTokens(w.ownerTok, w.appA.ID)
	if len(list) != 2 {
		t.Fatalf("tokens: %v", list)
	}
	for _, v := range list {
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"app_id", "created_at", "created_by", "expires_at", "id", "last_used_at", "prefix"}) {
			t.Fatalf("a listed verifier token has fields %v", keys)
		}
	}
	if list[0]["last_used_at"] != nil || list[1]["last_used_at"] == nil {
		t.Fatalf("last use: the unused old token %v, the used new one %v", list[0]["last_used_at"], list[1]["last_used_at"])
	}
	w.mintVerifier(w.ownerTok, w.appB.ID, "0s")
	w.do("DELETE", "/v1/apps/"+w.appA.ID+"/verifier-tokens/"+list[0]["id"].(string), w.ownerTok, nil).WantStatus(http.StatusNoContent)
	audit := w.do("GET", "/v1/audit?limit=100", w.ownerTok, nil).WantStatus(http.StatusOK)
	for _, want := range []string{`"verifier_token.mint"`, `"verifier_token.retire"`, `"` + minted["id"].(string) + `"`, `"` + list[0]["id"].(string) + `"`} {
		if !bytes.Contains(audit.Body, []byte(want)) {
			t.Errorf("the audit log has no %s: %s", want, audit.Body)
		}
	}
}
