package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// rateLimitJSON is a key's rate limit on the wire: requests per "1s", "1m"
// or "1h".
type rateLimitJSON struct {
	Requests int    `json:"requests"`
	Per      string `json:"per"`
}

func rateLimitOut(r *keyservice.RateLimit) *rateLimitJSON {
	if r == nil {
		return nil
	}
	return &rateLimitJSON{Requests: r.Requests, Per: keyservice.RatePerName(r.Per)}
}

// rateLimitIn reads a rate limit given by a caller; nil is none.
func rateLimitIn(r *rateLimitJSON) (*keyservice.RateLimit, error) {
	if r == nil {
		return nil, nil
	}
	per, err := keyservice.ParseRatePer(r.Per)
	if err != nil {
		return nil, err
	}
	return &keyservice.RateLimit{Requests: r.Requests, Per: per}, nil
}

// cidrsOut is a key's allowed networks for its JSON: [] when any network.
func cidrsOut(c []string) []string {
	if c == nil {
		return []string{}
	}
	return c
}

// updateKey answers PATCH /v1/keys/{id}: a field left out stays as it is;
// null (or [] for allowed_cidrs) removes it.
func (s *Server) updateKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RateLimit    json.RawMessage `json:"rate_limit"`
		AllowedCIDRs json.RawMessage `json:"allowed_cidrs"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	var up keyservice.KeyUpdate
	if req.RateLimit != nil {
		up.SetRateLimit = true
		var rl *rateLimitJSON
		if !isNull(req.RateLimit) {
			if !s.strictInto(w, req.RateLimit, &rl, `rate_limit must be {"requests": N, "per": "1s"|"1m"|"1h"} or null`) {
				return
			}
		}
		var err error
		if up.RateLimit, err = rateLimitIn(rl); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if req.AllowedCIDRs != nil {
		up.SetAllowedCIDRs = true
		if !isNull(req.AllowedCIDRs) && !s.strictInto(w, req.AllowedCIDRs, &up.AllowedCIDRs, `allowed_cidrs must be a list of CIDR ranges, such as ["10.0.0.0/8"], or null`) {
			return
		}
	}
	k, err := s.svc.UpdateKey(r.Context(), caller(r), r.PathValue("id"), up)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toKey(k))
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// strictInto decodes one field of a body already read, refusing unknown
// fields inside it as the body's decoding does; on failure it answers 400
// with msg.
func (s *Server) strictInto(w http.ResponseWriter, raw json.RawMessage, v any, msg string) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_request", msg)
		return false
	}
	return true
}
