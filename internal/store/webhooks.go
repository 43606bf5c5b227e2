package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	neturl "net/url"
	"slices"
	"strings"
	"time"
)

// WebhookEndpoint is an organization's webhook endpoint. Events lists the
// event types it receives, or holds "*" alone for all of them.
type WebhookEndpoint struct {
	ID             string
	OrgID          string
	URL            string
	Description    string
	Events         []string
	Enabled        bool
	DisabledReason string
	CreatedAt      time.Time
	CreatedBy      string
}

// WebhookSecret is an endpoint's signing secret, sealed by the caller.
// ExpiresAt is nil for the current secret and set for the previous one,
// which signs too until then (a rotation's overlap).
type WebhookSecret struct {
	ID         string
	EndpointID string
	Ciphertext []byte
	CreatedAt  time.Time
	ExpiresAt  *time.Time
}

// Delivery states of a webhook message.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

// WebhookMessage is one event queued for one endpoint. ID is the
// webhook-id the receiver sees on every attempt; Payload is the body,
// fixed when the message was queued.
type WebhookMessage struct {
	ID            string
	EndpointID    string
	OrgID         string
	URL           string // the endpoint's, filled by ClaimWebhookMessages
	Seq           int64
	Type          string
	Payload       []byte
	CreatedAt     time.Time
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastAttemptAt *time.Time
	LastStatus    int
	LastError     string
	LastLatency   time.Duration
	DeliveredAt   *time.Time
}

// Audit actions of webhooks.
const (
	AuditWebhookCreate  = "webhook.create"
	AuditWebhookUpdate  = "webhook.update"
	AuditWebhookDelete  = "webhook.delete"
	AuditWebhookRotate  = "webhook.rotate_secret"
	AuditWebhookTest    = "webhook.test"
	AuditWebhookRetry   = "webhook.retry"
	AuditWebhookDisable = "webhook.disable"
)

const endpointCols = `id, org_id, url, description, events, enabled, disabled_reason, created_at, created_by`

func scanEndpoint(row rowScanner) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	var events string
	var enabled int64
	err := row.Scan(&e.ID, &e.OrgID, &e.URL, &e.Description, &events, &enabled, &e.DisabledReason, timeCol{&e.CreatedAt}, &e.CreatedBy)
	e.Events = strings.Fields(events)
	e.Enabled = enabled != 0
	return e, err
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// CreateWebhookEndpoint stores an endpoint and its first secret.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint, sec WebhookSecret) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (`+endpointCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			e.ID, e.OrgID, e.URL, e.Description, strings.Join(e.Events, " "), boolInt(e.Enabled), e.DisabledReason, micros(e.CreatedAt), e.CreatedBy)
		if err != nil {
			return err
		}
		if err := insertWebhookSecret(ctx, tx, sec); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: e.OrgID, At: e.CreatedAt, Actor: e.CreatedBy, Action: AuditWebhookCreate, Target: e.ID, Detail: origin(e.URL)})
	})
}

func insertWebhookSecret(ctx context.Context, tx *sql.Tx, sec WebhookSecret) error {
	var exp sql.NullInt64
	if sec.ExpiresAt != nil {
		exp = sql.NullInt64{Int64: micros(*sec.ExpiresAt), Valid: true}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_secrets (id, endpoint_id, ciphertext, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		sec.ID, sec.EndpointID, sec.Ciphertext, micros(sec.CreatedAt), exp)
	return err
}

// ListWebhookEndpoints lists an organization's endpoints, oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, orgID string) ([]WebhookEndpoint, error) {
	eps, err := queryAll(ctx, s.db, scanEndpoint, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id`, orgID)
	return eps, classify(err)
}

// GetWebhookEndpoint returns an endpoint of an organization.
func (s *Store) GetWebhookEndpoint(ctx context.Context, orgID, id string) (WebhookEndpoint, error) {
	return one(scanEndpoint(s.db.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1 AND org_id = $2`, id, orgID)))
}

// UpdateWebhookEndpoint changes an endpoint's URL, description, events and
// whether it is enabled; enabling it clears why it was disabled.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, e WebhookEndpoint, actor string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE webhook_endpoints SET url = $1, description = $2, events = $3, enabled = $4, disabled_reason = $5 WHERE id = $6 AND org_id = $7`,
			e.URL, e.Description, strings.Join(e.Events, " "), boolInt(e.Enabled), e.DisabledReason, e.ID, e.OrgID); err != nil {
			return err
		}
		detail := "enabled"
		if !e.Enabled {
			detail = "disabled"
		}
		return addAudit(ctx, tx, Audit{OrgID: e.OrgID, At: at, Actor: actor, Action: AuditWebhookUpdate, Target: e.ID, Detail: detail + ", " + origin(e.URL) + ", events " + strings.Join(e.Events, " ")})
	})
}

// DeleteWebhookEndpoint deletes an endpoint with its secrets and queue.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, orgID, id, actor string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var url string
		if err := tx.QueryRowContext(ctx, `SELECT url FROM webhook_endpoints WHERE id = $1 AND org_id = $2`, id, orgID).Scan(&url); err != nil {
			return notFound(err)
		}
		for _, q := range []string{`DELETE FROM webhook_messages WHERE endpoint_id = $1`, `DELETE FROM webhook_secrets WHERE endpoint_id = $1`, `DELETE FROM webhook_endpoints WHERE id = $1`} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: AuditWebhookDelete, Target: id, Detail: origin(url)})
	})
}

// RotateWebhookSecret makes sec the endpoint's current secret; the secret
// current until now keeps signing until overlapUntil, and older ones stop.
func (s *Store) RotateWebhookSecret(ctx context.Context, orgID string, sec WebhookSecret, overlapUntil time.Time, actor string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// Takes the endpoint's row lock: two rotations queue, so each
		// leaves exactly one previous secret.
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE webhook_endpoints SET last_seq = last_seq WHERE id = $1 AND org_id = $2`, sec.EndpointID, orgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at IS NOT NULL`, sec.EndpointID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_secrets SET expires_at = $1 WHERE endpoint_id = $2 AND expires_at IS NULL`, micros(overlapUntil), sec.EndpointID); err != nil {
			return err
		}
		if err := insertWebhookSecret(ctx, tx, sec); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: sec.CreatedAt, Actor: actor, Action: AuditWebhookRotate, Target: sec.EndpointID, Detail: "previous secret signs until " + overlapUntil.UTC().Format(time.RFC3339)})
	})
}

// WebhookSecrets returns an endpoint's secrets that still sign at now,
// the current one first.
func (s *Store) WebhookSecrets(ctx context.Context, endpointID string, now time.Time) ([]WebhookSecret, error) {
	secs, err := queryAll(ctx, s.db, func(row rowScanner) (WebhookSecret, error) {
		var sec WebhookSecret
		err := row.Scan(&sec.ID, &sec.EndpointID, &sec.Ciphertext, timeCol{&sec.CreatedAt}, nullTimeCol{&sec.ExpiresAt})
		return sec, err
	}, `SELECT id, endpoint_id, ciphertext, created_at, expires_at FROM webhook_secrets WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at DESC, id`, endpointID, micros(now))
	return secs, classify(err)
}

// newMessageID returns a webhook-id: unique, and the same on every attempt.
func newMessageID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "msg_" + hex.EncodeToString(b)
}

// enqueueWebhook queues payload for each enabled endpoint of orgID that
// receives typ (only the endpoint only, when set, whatever its events).
// Each endpoint's next sequence number is taken under its row's lock,
// held to the commit, so an endpoint's messages commit in seq order.
func enqueueWebhook(ctx context.Context, tx *sql.Tx, orgID, typ string, at time.Time, payload []byte, only string) error {
	eps, err := queryAll(ctx, tx, func(row rowScanner) (WebhookEndpoint, error) {
		var e WebhookEndpoint
		var events string
		err := row.Scan(&e.ID, &events)
		e.Events = strings.Fields(events)
		return e, err
	}, `SELECT id, events FROM webhook_endpoints WHERE org_id = $1 AND enabled = 1 ORDER BY id`, orgID)
	if err != nil {
		return err
	}
	for _, e := range eps {
		if only != "" && e.ID != only {
			continue
		}
		if only == "" && !slices.Contains(e.Events, "*") && !slices.Contains(e.Events, typ) {
			continue
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, `UPDATE webhook_endpoints SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq`, e.ID).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_messages (id, endpoint_id, org_id, seq, type, payload, created_at, status, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			newMessageID(), e.ID, orgID, seq, typ, string(payload), micros(at), WebhookPending, micros(at)); err != nil {
			return err
		}
	}
	return nil
}

// hasWebhooks reports whether orgID has an enabled endpoint, so that a
// change in an organization without any builds no payload.
func hasWebhooks(ctx context.Context, tx *sql.Tx, orgID string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhook_endpoints WHERE org_id = $1 AND enabled = 1`, orgID).Scan(&n)
	return n > 0, err
}

// SendWebhookTest queues a webhook.test message for one endpoint.
func (s *Store) SendWebhookTest(ctx context.Context, orgID, endpointID string, payload []byte, actor string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var enabled int64
		if err := tx.QueryRowContext(ctx, `SELECT enabled FROM webhook_endpoints WHERE id = $1 AND org_id = $2`, endpointID, orgID).Scan(&enabled); err != nil {
			return notFound(err)
		}
		if enabled == 0 {
			return ErrWebhookDisabled
		}
		if err := enqueueWebhook(ctx, tx, orgID, WebhookTest, at, payload, endpointID); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: AuditWebhookTest, Target: endpointID})
	})
}

// origin is a URL's scheme and host, for the audit log: an endpoint's path
// and query may be its receiver's own secret (a chat tool's incoming-hook
// URL), which the audit log, read by more people, does not repeat.
func origin(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
