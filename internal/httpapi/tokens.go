package httpapi

import (
	"net/http"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// Verifier tokens (an app's sidecar credentials) and user tokens (the
// caller's own API credentials). Neither is ever answered after its
// creation: lists carry the display prefix alone.

type verifierTokenJSON struct {
	ID         string     `json:"id"`
	AppID      string     `json:"app_id"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// mintedVerifierJSON is the answer to a mint: the new token, shown once,
// and when the token it replaced stops (null when there was none).
type mintedVerifierJSON struct {
	verifierTokenJSON
	Token             string     `json:"token"`
	PreviousID        *string    `json:"previous_id"`
	PreviousExpiresAt *time.Time `json:"previous_expires_at"`
}

type userTokenJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Current   bool       `json:"current"`
	Token     string     `json:"token,omitempty"`
}

func toVerifierToken(v keyservice.VerifierToken) verifierTokenJSON {
	return verifierTokenJSON{ID: v.ID, AppID: v.AppID, Prefix: v.Prefix, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy,
		ExpiresAt: v.ExpiresAt, LastUsedAt: v.LastUsedAt}
}

func toUserToken(t keyservice.UserToken) userTokenJSON {
	return userTokenJSON{ID: t.ID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Current: t.Current}
}

func (s *Server) mintVerifierToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Overlap *string `json:"overlap"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	if req.Overlap == nil {
		writeErr(w, http.StatusUnprocessableEntity, "invalid_argument", `overlap is required: how long the current token keeps working, such as "1h", or "0s" to stop it at once`)
		return
	}
	overlap, err := keyservice.ParseOverlap(*req.Overlap)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.svc.MintVerifierToken(r.Context(), caller(r), r.PathValue("id"), overlap)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := mintedVerifierJSON{verifierTokenJSON: toVerifierToken(res.Token), Token: res.Plain}
	if p := res.Previous; p != nil {
		out.PreviousID, out.PreviousExpiresAt = &p.ID, p.ExpiresAt
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listVerifierTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.svc.ListVerifierTokens(r.Context(), caller(r), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := each(tokens, toVerifierToken)
	writeJSON(w, http.StatusOK, map[string]any{"verifier_tokens": out})
}

func (s *Server) retireVerifierToken(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.svc.RetireVerifierToken(r.Context(), caller(r), r.PathValue("id"), r.PathValue("token_id")))
}

func (s *Server) createMyToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string  `json:"name"`
		ExpiresAt *string `json:"expires_at"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	var expires *time.Time
	if req.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", "expires_at must be an RFC 3339 time such as 2027-01-31T00:00:00Z")
			return
		}
		expires = &t
	}
	t, plain, err := s.svc.CreateMyToken(r.Context(), caller(r), req.Name, expires)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := toUserToken(t)
	out.Token = plain
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listMyTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.svc.ListMyTokens(r.Context(), caller(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := each(tokens, toUserToken)
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) revokeMyToken(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.svc.RevokeMyToken(r.Context(), caller(r), r.PathValue("id")))
}
