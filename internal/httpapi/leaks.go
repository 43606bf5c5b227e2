package httpapi

import (
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// leakRoute is GitHub's secret scanning partner endpoint. It carries no
// bearer token: GitHub's signature over the body is its only credential,
// checked by the service before anything is read from the body. Its
// bodies may be larger than any other route's (MaxLeakReportBytes).
const leakRoute = "POST /v1/leaks/github"

// Results of appkeys_leak_reports_total.
var leakResults = []string{"accepted", "unauthorized", "rate_limited", "bad_request", "unavailable", "error"}

type leakMetrics struct {
	reports *prometheus.CounterVec
	revoked prometheus.Counter
}

func newLeakMetrics(reg prometheus.Registerer) *leakMetrics {
	m := &leakMetrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appkeys_leak_reports_total",
			Help: "Leak reports (POST /v1/leaks/github, one per request, whatever its number of matches), by result: accepted (signature verified, acted on), unauthorized (missing, malformed or wrong signature, or unknown key identifier), rate_limited, bad_request, unavailable or error.",
		}, []string{"result"}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appkeys_leaked_keys_revoked_total",
			Help: "Keys revoked because a verified leak report named them.",
		}),
	}
	for _, r := range leakResults {
		m.reports.WithLabelValues(r)
	}
	reg.MustRegister(m.reports, m.revoked)
	return m
}

// leakResult is the metrics label of a refused report.
func leakResult(err error) string {
	switch keyservice.KindOf(err) {
	case keyservice.KindUnauthorized:
		return "unauthorized"
	case keyservice.KindRateLimited:
		return "rate_limited"
	case keyservice.KindBadRequest:
		return "bad_request"
	case keyservice.KindUnavailable:
		return "unavailable"
	}
	return "error"
}

// leakFeedbackJSON is GitHub's feedback format; the token itself
// (token_raw) is never sent back.
type leakFeedbackJSON struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// reportLeaks answers POST /v1/leaks/github.
func (s *Server) reportLeaks(w http.ResponseWriter, r *http.Request) {
	from, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		from = r.RemoteAddr
	}
	res, err := s.svc.ReportLeaks(r.Context(), keyservice.LeakReport{
		From:          from,
		KeyIdentifier: r.Header.Get("Github-Public-Key-Identifier"),
		Signature:     r.Header.Get("Github-Public-Key-Signature"),
		Body:          r.Body,
	})
	if err != nil {
		s.leaks.reports.WithLabelValues(leakResult(err)).Inc()
		s.fail(w, r, err)
		return
	}
	s.leaks.reports.WithLabelValues("accepted").Inc()
	s.leaks.revoked.Add(float64(res.Revoked))
	out := make([]leakFeedbackJSON, len(res.Feedback))
	for i, f := range res.Feedback {
		out[i] = leakFeedbackJSON{TokenHash: f.TokenHash, TokenType: f.TokenType, Label: f.Label}
	}
	writeJSON(w, http.StatusOK, out)
}

// lookupKey answers POST /v1/keys/lookup: which of the caller's
// organization's keys a key is. The key travels in the body, never in
// the URL, where logs and proxies would keep it.
func (s *Server) lookupKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	k, err := s.svc.LookupKey(r.Context(), caller(r), req.Key)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toKey(k))
}
