package httpapi

import (
	"net/http"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// usageCountJSON is one key's counts, in a report and in an app's totals.
type usageCountJSON struct {
	KeyID       string `json:"key_id"`
	Allowed     int64  `json:"allowed"`
	RateLimited int64  `json:"rate_limited"`
	Forbidden   int64  `json:"forbidden"`
}

// reportUsage answers POST /v1/usage, a sidecar's counts since its last
// report.
func (s *Server) reportUsage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Keys []usageCountJSON `json:"keys"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	counts := each(req.Keys, func(u usageCountJSON) keyservice.UsageCount {
		return keyservice.UsageCount{KeyID: u.KeyID, Allowed: u.Allowed, RateLimited: u.RateLimited, Forbidden: u.Forbidden}
	})
	res, err := s.svc.ReportUsage(r.Context(), caller(r), counts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.usageReports.Inc()
	s.metrics.usageIgnored.Add(float64(res.Ignored))
	writeJSON(w, http.StatusOK, map[string]int{"accepted": res.Accepted, "ignored": res.Ignored})
}

// usageWindow reads from= and to= (RFC 3339; to defaults to now, from
// to 24 hours before to).
func (s *Server) usageWindow(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	to = s.svc.Now()
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse(time.RFC3339, v); err != nil {
			return from, to, &keyservice.Error{Kind: keyservice.KindBadRequest, Message: "to must be an RFC 3339 time, such as 2026-12-01T00:00:00Z"}
		}
	}
	from = to.Add(-24 * time.Hour)
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return from, to, &keyservice.Error{Kind: keyservice.KindBadRequest, Message: "from must be an RFC 3339 time, such as 2026-12-01T00:00:00Z"}
		}
	}
	return from, to, nil
}

// keyUsage answers GET /v1/keys/{id}/usage: the key's hourly points.
func (s *Server) keyUsage(w http.ResponseWriter, r *http.Request) {
	from, to, err := s.usageWindow(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	pts, err := s.svc.KeyUsage(r.Context(), caller(r), id, from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type pointJSON struct {
		Hour        time.Time `json:"hour"`
		Allowed     int64     `json:"allowed"`
		RateLimited int64     `json:"rate_limited"`
		Forbidden   int64     `json:"forbidden"`
	}
	out := each(pts, func(p keyservice.UsagePoint) pointJSON {
		return pointJSON{p.Hour, p.Allowed, p.RateLimited, p.Forbidden}
	})
	// pts covers every hour of the rounded window, so its ends are the window's.
	writeJSON(w, http.StatusOK, map[string]any{"key_id": id, "from": pts[0].Hour, "to": pts[len(pts)-1].Hour.Add(time.Hour), "points": out})
}

// appUsage answers GET /v1/apps/{id}/usage: each key's totals in a window.
func (s *Server) appUsage(w http.ResponseWriter, r *http.Request) {
	from, to, err := s.usageWindow(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	tot, from, to, err := s.svc.AppUsage(r.Context(), caller(r), id, from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := each(tot, func(u keyservice.UsageCount) usageCountJSON {
		return usageCountJSON{u.KeyID, u.Allowed, u.RateLimited, u.Forbidden}
	})
	writeJSON(w, http.StatusOK, map[string]any{"app_id": id, "from": from, "to": to, "keys": out})
}
