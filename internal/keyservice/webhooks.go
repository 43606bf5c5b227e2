package keyservice

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/webhook"
)

// WebhookEventTypes are the event types an endpoint may ask for, besides
// "*" for all of them.
var WebhookEventTypes = []string{
	store.WebhookKeyCreated, store.EventKeyRevoked, store.EventKeyOrphaned, store.WebhookKeyRolled, store.WebhookKeyLeaked,
	store.WebhookKeyExpiring, store.WebhookKeyExpired, store.EventAppDeleted, store.WebhookUserDeleted,
}

// WebhookSecretOverlap is how long the previous signing secret keeps
// signing after a rotation.
const WebhookSecretOverlap = 24 * time.Hour

// Bounds of what an endpoint is made of.
const (
	MaxWebhookDescription = 500
	MaxWebhookEndpoints   = 20 // per organization
	MaxWebhookDeliveries  = 100
)

// WebhookEndpoint is an organization's webhook endpoint. Its signing
// secret is shown once, by CreateWebhook and RotateWebhookSecret.
type WebhookEndpoint struct {
	ID             string
	URL            string
	Description    string
	Events         []string
	Enabled        bool
	DisabledReason string // why the service disabled it, when it did
	CreatedAt      time.Time
	CreatedBy      string
}

func webhookOf(e store.WebhookEndpoint) WebhookEndpoint {
	return WebhookEndpoint{ID: e.ID, URL: e.URL, Description: e.Description, Events: e.Events, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt, CreatedBy: e.CreatedBy}
}

// WebhookInput is what CreateWebhook takes.
type WebhookInput struct {
	URL         string
	Events      []string
	Description string
}

// WebhookPatch changes an endpoint; nil fields stay as they are.
type WebhookPatch struct {
	URL         *string
	Events      []string // nil: unchanged
	Description *string
	Enabled     *bool
}

func (s *Service) checkWebhook(url string, events []string, description string) error {
	if err := webhook.CheckURL(url); err != nil {
		return errorf(KindInvalid, "%s", err.Error())
	}
	if s.webhookPolicy.LiteralRefused(url) {
		return errorf(KindInvalid, "url must name a public address; the service refuses loopback, private, link-local and metadata addresses")
	}
	if len(events) == 0 {
		return errorf(KindInvalid, `events must list event types, or be ["*"] for all`)
	}
	for _, e := range events {
		if e == "*" && len(events) == 1 {
			continue
		}
		if !slices.Contains(WebhookEventTypes, e) {
			return errorf(KindInvalid, "events: %q is not an event type (or \"*\" alone)", e)
		}
	}
	if len(description) > MaxWebhookDescription {
		return errorf(KindInvalid, "description must be at most %d bytes", MaxWebhookDescription)
	}
	return nil
}

// sealWebhookSecret seals a signing secret as the Secrets store seals its
// values, bound to its endpoint ("webhook:" is no secret name's alphabet,
// so no Secrets store row can be given its ciphertext).
func (s *Service) sealWebhookSecret(orgID, endpointID, secret string) ([]byte, error) {
	return s.keys.seal(orgID, "webhook:"+endpointID, []byte(secret))
}

// CreateWebhook registers an endpoint (owners and aura owners) and
// returns it with its signing secret, shown this once.
func (s *Service) CreateWebhook(ctx context.Context, c Caller, in WebhookInput) (WebhookEndpoint, string, error) {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return WebhookEndpoint{}, "", err
	}
	if err := s.checkWebhook(in.URL, in.Events, in.Description); err != nil {
		return WebhookEndpoint{}, "", err
	}
	eps, err := s.store.ListWebhookEndpoints(ctx, u.OrgID)
	if err != nil {
		return WebhookEndpoint{}, "", s.storeErr(err)
	}
	if len(eps) >= MaxWebhookEndpoints {
		return WebhookEndpoint{}, "", errorf(KindConflict, "an organization may have at most %d webhook endpoints", MaxWebhookEndpoints)
	}
	now := s.now().UTC()
	e := store.WebhookEndpoint{ID: newID("whk"), OrgID: u.OrgID, URL: in.URL, Description: in.Description, Events: in.Events, Enabled: true, CreatedAt: now, CreatedBy: u.ID}
	secret := webhook.NewSecret()
	sealed, err := s.sealWebhookSecret(u.OrgID, e.ID, secret)
	if err != nil {
		return WebhookEndpoint{}, "", err
	}
	if err := s.store.CreateWebhookEndpoint(ctx, e, store.WebhookSecret{ID: newID("whs"), EndpointID: e.ID, Ciphertext: sealed, CreatedAt: now}); err != nil {
		return WebhookEndpoint{}, "", s.storeErr(err)
	}
	return webhookOf(e), secret, nil
}

// ListWebhooks lists the organization's endpoints (owners and aura owners).
func (s *Service) ListWebhooks(ctx context.Context, c Caller) ([]WebhookEndpoint, error) {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return nil, err
	}
	eps, err := s.store.ListWebhookEndpoints(ctx, u.OrgID)
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(eps, webhookOf), nil
}

// GetWebhook returns an endpoint of the organization.
func (s *Service) GetWebhook(ctx context.Context, c Caller, id string) (WebhookEndpoint, error) {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return WebhookEndpoint{}, err
	}
	e, err := s.store.GetWebhookEndpoint(ctx, u.OrgID, id)
	if err != nil {
		return WebhookEndpoint{}, s.notFound(err, "webhook %s not found", id)
	}
	return webhookOf(e), nil
}

// UpdateWebhook changes an endpoint; enabling a disabled one clears why.
func (s *Service) UpdateWebhook(ctx context.Context, c Caller, id string, p WebhookPatch) (WebhookEndpoint, error) {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return WebhookEndpoint{}, err
	}
	e, err := s.store.GetWebhookEndpoint(ctx, u.OrgID, id)
	if err != nil {
		return WebhookEndpoint{}, s.notFound(err, "webhook %s not found", id)
	}
	if p.URL != nil {
		e.URL = *p.URL
	}
	if p.Events != nil {
		e.Events = p.Events
	}
	if p.Description != nil {
		e.Description = *p.Description
	}
	if p.Enabled != nil {
		e.Enabled = *p.Enabled
		if e.Enabled {
			e.DisabledReason = ""
		}
	}
	if err := s.checkWebhook(e.URL, e.Events, e.Description); err != nil {
		return WebhookEndpoint{}, err
	}
	if err := s.store.UpdateWebhookEndpoint(ctx, e, u.ID, s.now().UTC()); err != nil {
		return WebhookEndpoint{}, s.notFound(err, "webhook %s not found", id)
	}
	return webhookOf(e), nil
}

// DeleteWebhook deletes an endpoint with its queue.
func (s *Service) DeleteWebhook(ctx context.Context, c Caller, id string) error {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return err
	}
	return s.notFound(s.store.DeleteWebhookEndpoint(ctx, u.OrgID, id, u.ID, s.now().UTC()), "webhook %s not found", id)
}

// RotateWebhookSecret gives an endpoint a new signing secret, returned
// this once; the previous one signs too until the time returned.
func (s *Service) RotateWebhookSecret(ctx context.Context, c Caller, id string) (string, time.Time, error) {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.store.GetWebhookEndpoint(ctx, u.OrgID, id); err != nil {
		return "", time.Time{}, s.notFound(err, "webhook %s not found", id)
	}
	now := s.now().UTC()
	secret := webhook.NewSecret()
	sealed, err := s.sealWebhookSecret(u.OrgID, id, secret)
	if err != nil {
		return "", time.Time{}, err
	}
	until := now.Add(WebhookSecretOverlap)
	sec := store.WebhookSecret{ID: newID("whs"), EndpointID: id, Ciphertext: sealed, CreatedAt: now}
	if err := s.store.RotateWebhookSecret(ctx, u.OrgID, sec, until, u.ID); err != nil {
		return "", time.Time{}, s.notFound(err, "webhook %s not found", id)
	}
	return secret, until, nil
}

// SendTestWebhook queues a webhook.test message for one endpoint.
func (s *Service) SendTestWebhook(ctx context.Context, c Caller, id string) error {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return err
	}
	now := s.now().UTC()
	payload := store.WebhookPayload(store.WebhookTest, now, store.WebhookData{EndpointID: id, Actor: u.ID})
	err = s.store.SendWebhookTest(ctx, u.OrgID, id, payload, u.ID, now)
	if errors.Is(err, store.ErrWebhookDisabled) {
		return errorf(KindConflict, "webhook %s is disabled; enable it first", id)
	}
	return s.notFound(err, "webhook %s not found", id)
}

// WebhookDelivery is a message of an endpoint's delivery log.
type WebhookDelivery struct {
	ID            string // the webhook-id
	Type          string
	Status        string // pending, delivered or failed
	Attempts      int
	CreatedAt     time.Time
	NextAttemptAt *time.Time // while pending
	LastAttemptAt *time.Time
	LastStatus    int // the receiver's HTTP status; 0 when none came
	LastError     string
	LastLatency   time.Duration
	DeliveredAt   *time.Time
}

// ListWebhookDeliveries returns an endpoint's newest messages.
func (s *Service) ListWebhookDeliveries(ctx context.Context, c Caller, id string) ([]WebhookDelivery, error) {
	if _, err := s.GetWebhook(ctx, c, id); err != nil {
		return nil, err
	}
	msgs, err := s.store.ListWebhookMessages(ctx, c.User.OrgID, id, MaxWebhookDeliveries)
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(msgs, func(m store.WebhookMessage) WebhookDelivery {
		d := WebhookDelivery{ID: m.ID, Type: m.Type, Status: m.Status, Attempts: m.Attempts, CreatedAt: m.CreatedAt, LastAttemptAt: m.LastAttemptAt,
			LastStatus: m.LastStatus, LastError: m.LastError, LastLatency: m.LastLatency, DeliveredAt: m.DeliveredAt}
		if m.Status == store.WebhookPending {
			next := m.NextAttemptAt
			d.NextAttemptAt = &next
		}
		return d
	}), nil
}

// RetryWebhookDelivery queues a message again, at once, with its
// webhook-id.
func (s *Service) RetryWebhookDelivery(ctx context.Context, c Caller, id, deliveryID string) error {
	u, err := c.manager("manage webhooks")
	if err != nil {
		return err
	}
	return s.notFound(s.store.RetryWebhookMessage(ctx, u.OrgID, id, deliveryID, u.ID, s.now().UTC()), "delivery %s of webhook %s not found", deliveryID, id)
}
