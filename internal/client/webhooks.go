package client

import (
	"context"
	"net/http"
	"time"
)

// Webhook is a webhook endpoint. Secret is set in CreateWebhook's answer
// alone: the signing secret, shown once.
type Webhook struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Description    string    `json:"description"`
	Events         []string  `json:"events"`
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled_reason"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
	Secret         string    `json:"secret,omitempty"`
}

// CreateWebhookRequest registers an endpoint; Events lists event types,
// or is ["*"] for all.
type CreateWebhookRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description,omitempty"`
}

// UpdateWebhookRequest changes an endpoint; nil fields stay as they are.
type UpdateWebhookRequest struct {
	URL         *string  `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Description *string  `json:"description,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
}

// RotatedWebhookSecret is RotateWebhookSecret's answer: the new secret,
// shown once, and when the previous one stops signing.
type RotatedWebhookSecret struct {
	Secret                  string    `json:"secret"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at"`
}

// WebhookDelivery is a message of an endpoint's delivery log; ID is the
// webhook-id its receiver sees.
type WebhookDelivery struct {
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

// CreateWebhook registers an endpoint; the answer carries its signing
// secret, which is not shown again.
func (c *Client) CreateWebhook(ctx context.Context, in CreateWebhookRequest) (*Webhook, error) {
	var out Webhook
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/webhooks", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWebhooks lists the organization's endpoints.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/webhooks"}, &out); err != nil {
		return nil, err
	}
	return out.Webhooks, nil
}

// GetWebhook returns an endpoint.
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var out Webhook
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/webhooks/" + seg(id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWebhook changes an endpoint: enables or disables it, changes its
// URL, events or description.
func (c *Client) UpdateWebhook(ctx context.Context, id string, in UpdateWebhookRequest) (*Webhook, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var out Webhook
	if err := c.do(ctx, request{method: http.MethodPatch, path: "/v1/webhooks/" + seg(id), body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWebhook deletes an endpoint and its queue.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	if err := checkID("webhook id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/webhooks/" + seg(id)}, nil)
}

// RotateWebhookSecret gives an endpoint a new signing secret; both sign
// for 24 hours.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string) (*RotatedWebhookSecret, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var out RotatedWebhookSecret
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/webhooks/" + seg(id) + "/rotate-secret"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendTestWebhook queues a webhook.test event for an endpoint.
func (c *Client) SendTestWebhook(ctx context.Context, id string) error {
	if err := checkID("webhook id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodPost, path: "/v1/webhooks/" + seg(id) + "/test"}, nil)
}

// ListWebhookDeliveries returns an endpoint's newest deliveries.
func (c *Client) ListWebhookDeliveries(ctx context.Context, id string) ([]WebhookDelivery, error) {
	if err := checkID("webhook id", id); err != nil {
		return nil, err
	}
	var out struct {
		Deliveries []WebhookDelivery `json:"deliveries"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/webhooks/" + seg(id) + "/deliveries"}, &out); err != nil {
		return nil, err
	}
	return out.Deliveries, nil
}

// RetryWebhookDelivery queues a delivery again, with its webhook-id.
func (c *Client) RetryWebhookDelivery(ctx context.Context, id, deliveryID string) error {
	if err := checkID("webhook id", id); err != nil {
		return err
	}
	if err := checkID("delivery id", deliveryID); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodPost, path: "/v1/webhooks/" + seg(id) + "/deliveries/" + seg(deliveryID) + "/retry"}, nil)
}
