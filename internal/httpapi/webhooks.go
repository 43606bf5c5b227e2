package httpapi

import (
	"net/http"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// webhookRoutes are the webhook endpoints' calls (owners and aura owners).
var webhookRoutes = []route{
	{"POST /v1/webhooks", (*Server).createWebhook, true},
	{"GET /v1/webhooks", (*Server).listWebhooks, true},
	{"GET /v1/webhooks/{id}", (*Server).getWebhook, true},
	{"PATCH /v1/webhooks/{id}", (*Server).updateWebhook, true},
	{"DELETE /v1/webhooks/{id}", (*Server).deleteWebhook, true},
	{"POST /v1/webhooks/{id}/rotate-secret", (*Server).rotateWebhookSecret, true},
	{"POST /v1/webhooks/{id}/test", (*Server).testWebhook, true},
	{"GET /v1/webhooks/{id}/deliveries", (*Server).listWebhookDeliveries, true},
	{"POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry", (*Server).retryWebhookDelivery, true},
}

func init() { routes = append(routes, webhookRoutes...) }

type webhookJSON struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Description    string    `json:"description"`
	Events         []string  `json:"events"`
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled_reason"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
	// Secret is in the create answer alone.
	Secret string `json:"secret,omitempty"`
}

func toWebhook(e keyservice.WebhookEndpoint) webhookJSON {
	return webhookJSON{ID: e.ID, URL: e.URL, Description: e.Description, Events: e.Events, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt, CreatedBy: e.CreatedBy}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL         string   `json:"url"`
		Events      []string `json:"events"`
		Description string   `json:"description"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	e, secret, err := s.svc.CreateWebhook(r.Context(), caller(r), keyservice.WebhookInput{URL: req.URL, Events: req.Events, Description: req.Description})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := toWebhook(e)
	out.Secret = secret
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	eps, err := s.svc.ListWebhooks(r.Context(), caller(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": each(eps, toWebhook)})
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	e, err := s.svc.GetWebhook(r.Context(), caller(r), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toWebhook(e))
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL         *string  `json:"url"`
		Events      []string `json:"events"`
		Description *string  `json:"description"`
		Enabled     *bool    `json:"enabled"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	e, err := s.svc.UpdateWebhook(r.Context(), caller(r), r.PathValue("id"), keyservice.WebhookPatch{URL: req.URL, Events: req.Events, Description: req.Description, Enabled: req.Enabled})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toWebhook(e))
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.svc.DeleteWebhook(r.Context(), caller(r), r.PathValue("id")))
}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	secret, until, err := s.svc.RotateWebhookSecret(r.Context(), caller(r), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"secret": secret, "previous_secret_expires_at": until})
}

func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.SendTestWebhook(r.Context(), caller(r), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"queued": true})
}

type deliveryJSON struct {
	ID               string     `json:"id"`
	Type             string     `json:"type"`
	Status           string     `json:"status"`
	Attempts         int        `json:"attempts"`
	CreatedAt        time.Time  `json:"created_at"`
	NextAttemptAt    *time.Time `json:"next_attempt_at"`
	LastAttemptAt    *time.Time `json:"last_attempt_at"`
	LastResponseCode int        `json:"last_response_code"`
	LastError        string     `json:"last_error"`
	LatencyMS        float64    `json:"latency_ms"`
	DeliveredAt      *time.Time `json:"delivered_at"`
}

func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	ds, err := s.svc.ListWebhookDeliveries(r.Context(), caller(r), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": each(ds, func(d keyservice.WebhookDelivery) deliveryJSON {
		return deliveryJSON{ID: d.ID, Type: d.Type, Status: d.Status, Attempts: d.Attempts, CreatedAt: d.CreatedAt, NextAttemptAt: d.NextAttemptAt,
			LastAttemptAt: d.LastAttemptAt, LastResponseCode: d.LastStatus, LastError: d.LastError,
			LatencyMS: float64(d.LastLatency.Microseconds()) / 1000, DeliveredAt: d.DeliveredAt}
	})})
}

func (s *Server) retryWebhookDelivery(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.RetryWebhookDelivery(r.Context(), caller(r), r.PathValue("id"), r.PathValue("delivery_id")); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"queued": true})
}
