package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// verify answers POST /v1/verify, the sidecar's question about one key.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	v, err := s.svc.Verify(r.Context(), caller(r), req.Key)
	if err != nil {
		if keyservice.KindOf(err) == keyservice.KindRateLimited {
			s.metrics.verifyThrottled.Inc()
		}
		s.fail(w, r, err)
		return
	}
	s.metrics.verifyResults.WithLabelValues(v.Code).Inc()
	out := verdictJSON{AppID: v.AppID, Code: v.Code, ExpiresAt: v.ExpiresAt, KeyID: v.KeyID, KeyName: v.KeyName, Valid: v.Valid}
	out.AllowedCIDRs, out.RateLimit = v.Limits.AllowedCIDRs, rateLimitOut(v.Limits.RateLimit)
	writeJSON(w, http.StatusOK, out)
}

// verdictJSON is a verify answer. A struct rather than a map spares the hot
// path a map and a sort per answer; the fields keep the map's (alphabetical)
// order, so the bytes are the same. The limits appear only when the key has
// them, so the answer for a key without limits is byte for byte what it
// was. A sidecar older than limits ignores them (it skips unknown fields):
// upgrade the sidecars before setting limits (docs/limits.md).
type verdictJSON struct {
	AllowedCIDRs []string       `json:"allowed_cidrs,omitempty"`
	AppID        string         `json:"app_id"`
	Code         string         `json:"code"`
	ExpiresAt    *time.Time     `json:"expires_at"`
	KeyID        string         `json:"key_id"`
	KeyName      string         `json:"key_name"`
	RateLimit    *rateLimitJSON `json:"rate_limit,omitempty"`
	Valid        bool           `json:"valid"`
}

// events answers GET /v1/events, the long-poll of the app's change feed.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after *int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeErr(w, http.StatusBadRequest, "bad_request", "after must be a sequence number of 0 or more")
			return
		}
		after = &n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > keyservice.MaxEventsWait {
			writeErr(w, http.StatusBadRequest, "bad_request", "wait must be a duration from 0s to 60s, such as 30s")
			return
		}
		wait = d
	}
	if wait > 0 && after != nil && s.park(w, r, after, wait) {
		return
	}
	s.answerEvents(w, r, after, wait)
}

// answerEvents answers a call on the feed: at once, or when an event of
// the caller's app comes or the wait runs out.
func (s *Server) answerEvents(w http.ResponseWriter, r *http.Request, after *int64, wait time.Duration) {
	events, next, err := s.svc.Events(r.Context(), caller(r), after, wait)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type eventJSON struct {
		Seq       int64      `json:"seq"`
		Type      string     `json:"type"`
		KeyID     string     `json:"key_id,omitempty"`
		AppID     string     `json:"app_id"`
		At        time.Time  `json:"at"`
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
	}
	out := each(events, func(e keyservice.Event) eventJSON {
		return eventJSON{e.Seq, e.Type, e.KeyID, e.AppID, e.At, e.ExpiresAt}
	})
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next": next})
}
