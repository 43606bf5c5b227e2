package httpapi

import (
	"net/http"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// rolledJSON answers POST /v1/keys/{id}/roll: the new key object, the new
// key itself unless secrets received it, and the old key's new expiry.
type rolledJSON struct {
	keyJSON
	Secrets  []string     `json:"secrets,omitempty"`
	Previous previousJSON `json:"previous"`
}

// previousJSON is the rolled key after the roll.
type previousJSON struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) rollKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ExpiresAt    *string `json:"expires_at"`
		Overlap      *string `json:"overlap"`
		SaveAsSecret string  `json:"save_as_secret"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	exp, ok := expiresAt(w, req.ExpiresAt)
	if !ok {
		return
	}
	if req.Overlap == nil {
		// No default: a forgotten overlap must not revoke a key in use,
		// nor leave it working for a day nobody chose.
		writeErr(w, http.StatusUnprocessableEntity, "invalid_argument", `overlap is required, such as "24h" ("0s" revokes the old key at once)`)
		return
	}
	overlap, err := keyservice.ParseOverlap(*req.Overlap)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.svc.RollKey(r.Context(), caller(r), r.PathValue("id"), keyservice.RollKeyRequest{
		ExpiresAt: exp, Overlap: overlap, SaveAsSecret: req.SaveAsSecret,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := rolledJSON{keyJSON: toKey(res.Key), Secrets: res.Secrets,
		Previous: previousJSON{ID: res.Previous.ID, State: res.Previous.State, ExpiresAt: res.Previous.ExpiresAt}}
	out.Key = res.Plain
	writeJSON(w, http.StatusCreated, out)
}
