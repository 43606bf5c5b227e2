package httpapi_test

import (
	"net/http"
	"testing"
	"time"
)

func (w *world) createToken(token string, body any) map[string]any {
	w.t.Helper()
	return w.do("POST", "/v1/me/tokens", token, body).WantStatus(http.StatusCreated).JSON()
}

func (w *world) myTokens(token string) []map[string]any {
	w.t.Helper()
	var out struct {
		Tokens []map[string]any `json:"tokens"`
	}
	w.do("GET", "/v1/me/tokens", token, nil).WantStatus(http.StatusOK).Into(&out)
	return out.Tokens
}

// A user's own tokens: minted with an optional expiry that every call
// enforces, listed and revoked by their owner alone, never the last one,
// and gone with the user. The bootstrap owner's token is one of them and
// can be retired.
func TestUserTokens(t *testing.T) {
	w := newWorld(t)
	// The bootstrap owner sees their token as "initial", the one calling.
	mine := w.myTokens(w.ownerTok)
	if len(mine) != 1 || mine[0]["name"] != "initial" || mine[0]["current"] != true || mine[0]["expires_at"] != nil {
		t.Fatalf("the owner's tokens: %v", mine)
	}
	bootstrapID := mine[0]["id"].(string)

	exp := w.clock.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ci := w.createToken(w.ownerTok, map[string]any{"name": "ci", "expires_at": exp.Format(time.RFC3339)})
	ciTok, _ := ci["token"].(string)
	if len(ciTok) < 40 || ciTok[:4] != "aku_" || ci["prefix"] != ciTok[:10] || ci["expires_at"] != exp.Format(time.RFC3339) {
		t.Fatalf("create answered %v", ci)
	}
	w.do("GET", "/v1/me", ciTok, nil).WantStatus(http.StatusOK)
	laptop := w.createToken(w.ownerTok, map[string]any{"name": "laptop"})
	laptopTok := laptop["token"].(string)

	// The expiry holds on every call.
	w.clock.Advance(time.Hour)
	for _, path := range []string{"/v1/me", "/v1/apps", "/v1/me/tokens"} {
		w.do("GET", path, ciTok, nil).WantError(http.StatusUnauthorized, "unauthorized")
	}
	if got := w.myTokens(laptopTok); len(got) != 2 || got[1]["id"] != laptop["id"] || got[1]["current"] != true || got[0]["current"] != false {
		t.Fatalf("after ci expired: %v", got)
	}

	// Retire the bootstrap token; the laptop token goes on.
	w.do("DELETE", "/v1/me/tokens/"+bootstrapID, laptopTok, nil).WantStatus(http.StatusNoContent)
	w.do("GET", "/v1/me", w.ownerTok, nil).WantError(http.StatusUnauthorized, "unauthorized")
	w.do("GET", "/v1/me", laptopTok, nil).WantStatus(http.StatusOK)
	// Their last token cannot go.
	w.do("DELETE", "/v1/me/tokens/"+laptop["id"].(string), laptopTok, nil).WantError(http.StatusConflict, "conflict")

	// Another user's token id is 404, and stays working.
	memTokens := w.myTokens(w.memTok)
	spare := w.createToken(w.memTok, map[string]any{"name": "spare"})
	for _, id := range []string{memTokens[0]["id"].(string), spare["id"].(string)} {
		w.do("DELETE", "/v1/me/tokens/"+id, laptopTok, nil).WantError(http.StatusNotFound, "not_found")
		w.do("DELETE", "/v1/me/tokens/"+id, w.auraTok, nil).WantError(http.StatusNotFound, "not_found")
	}
	w.do("GET", "/v1/me", w.memTok, nil).WantStatus(http.StatusOK)
	if n := len(w.myTokens(w.memTok)); n != 2 {
		t.Fatalf("the member holds %d tokens, want 2", n)
	}

	// Bounds and shapes.
	for _, c := range []struct {
		body   any
		status int
	}{
		{map[string]any{"name": "past", "expires_at": w.clock.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}, 422},
		{map[string]any{"name": "x", "expires_at": "tomorrow"}, 400},
		{map[string]any{}, 422},
		{map[string]any{"name": "x", "token": "aku_mine"}, 400},
	} {
		w.do("POST", "/v1/me/tokens", laptopTok, c.body).WantError(c.status, "")
	}
	// Verifier and admin tokens have no "me".
	for _, tok := range []string{w.svc.AdminToken, w.appA.VerifierToken} {
		w.do("GET", "/v1/me/tokens", tok, nil).WantError(http.StatusForbidden, "forbidden")
		w.do("POST", "/v1/me/tokens", tok, map[string]any{"name": "x"}).WantError(http.StatusForbidden, "forbidden")
		w.do("DELETE", "/v1/me/tokens/"+bootstrapID, tok, nil).WantError(http.StatusForbidden, "forbidden")
	}

	// A user's tokens die with the user.
	must(t, w.client(laptopTok).DeleteUser(ctx(t), w.memberID))
	for _, tok := range []string{w.memTok, spare["token"].(string)} {
		w.do("GET", "/v1/me", tok, nil).WantError(http.StatusUnauthorized, "unauthorized")
	}
}
