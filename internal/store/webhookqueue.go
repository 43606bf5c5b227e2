package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrWebhookDisabled: a test event was asked of a disabled endpoint.
var ErrWebhookDisabled = errors.New("webhook endpoint is disabled")

// Webhook event types beyond the feed's.
const (
	WebhookKeyCreated  = "key.created"
	WebhookKeyRolled   = "key.rolled"
	WebhookKeyLeaked   = "key.leaked"
	WebhookUserDeleted = "user.deleted"
	WebhookKeyExpiring = "key.expiring"
	WebhookKeyExpired  = "key.expired"
	WebhookTest        = "webhook.test"
)

// WebhookData is a webhook payload's data: ids, names and times. It has no
// field that could hold a key, a token or a secret.
type WebhookData struct {
	KeyID      string     `json:"key_id,omitempty"`
	KeyName    string     `json:"key_name,omitempty"`
	AppID      string     `json:"app_id,omitempty"`
	AppName    string     `json:"app_name,omitempty"`
	UserID     string     `json:"user_id,omitempty"`
	UserEmail  string     `json:"user_email,omitempty"`
	Actor      string     `json:"actor,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	RolledTo   string     `json:"rolled_to,omitempty"`
	Threshold  string     `json:"threshold,omitempty"`
	EndpointID string     `json:"endpoint_id,omitempty"`
}

// WebhookPayload is the body of a webhook: {"type", "timestamp", "data"}.
func WebhookPayload(typ string, at time.Time, d WebhookData) []byte {
	b, _ := json.Marshal(struct {
		Type      string      `json:"type"`
		Timestamp time.Time   `json:"timestamp"`
		Data      WebhookData `json:"data"`
	}{typ, at.UTC(), d})
	return b
}

// webhookAudits are the audit actions that tell of a change webhooks
// announce. Every change writes its audit record in its own transaction,
// so the message is queued there too: never lost, never made twice.
var webhookAudits = map[string]bool{
	"key.create": true, "key.revoke": true, "key.orphan": true, "key.roll": true,
	AuditKeyLeaked: true, "app.delete": true, "user.delete": true,
}

// webhooksForAudits queues the webhook messages the audit records recs
// (just written in tx) tell of, for organizations that have endpoints.
func webhooksForAudits(ctx context.Context, tx *sql.Tx, recs []Audit) error {
	has := map[string]bool{}
	for _, a := range recs {
		if !webhookAudits[a.Action] {
			continue
		}
		h, seen := has[a.OrgID]
		if !seen {
			var err error
			if h, err = hasWebhooks(ctx, tx, a.OrgID); err != nil {
				return err
			}
			has[a.OrgID] = h
		}
		if !h {
			continue
		}
		if err := webhookForAudit(ctx, tx, a); err != nil {
			return fmt.Errorf("queue webhook: %w", err)
		}
	}
	return nil
}

func webhookForAudit(ctx context.Context, tx *sql.Tx, a Audit) error {
	queue := func(typ string, d WebhookData) error {
		return enqueueWebhook(ctx, tx, a.OrgID, typ, a.At, WebhookPayload(typ, a.At, d), "")
	}
	switch a.Action {
	case "app.delete":
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM apps WHERE id = $1`, a.Target).Scan(&name); err != nil {
			return err
		}
		return queue(EventAppDeleted, WebhookData{AppID: a.Target, AppName: name, Actor: a.Actor})
	case "user.delete":
		var email string
		if err := tx.QueryRowContext(ctx, `SELECT email FROM users WHERE id = $1`, a.Target).Scan(&email); err != nil {
			return err
		}
		return queue(WebhookUserDeleted, WebhookData{UserID: a.Target, UserEmail: email, Actor: a.Actor})
	}
	var d WebhookData
	var exp int64
	var revokeReason, orphanReason, rolledTo sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT k.id, k.name, k.app_id, a.name, k.expires_at, k.revoke_reason, k.orphan_reason, k.rolled_to
		FROM api_keys k JOIN apps a ON a.id = k.app_id WHERE k.id = $1`, a.Target).
		Scan(&d.KeyID, &d.KeyName, &d.AppID, &d.AppName, &exp, &revokeReason, &orphanReason, &rolledTo)
	if err != nil {
		return err
	}
	t := fromMicros(exp)
	d.ExpiresAt, d.Actor = &t, a.Actor
	switch a.Action {
	case "key.create":
		return queue(WebhookKeyCreated, d)
	case "key.revoke":
		if revokeReason.String == RevokeLeaked {
			if err := queue(WebhookKeyLeaked, d); err != nil {
				return err
			}
			d.Reason = RevokeLeaked
		}
		return queue(EventKeyRevoked, d)
	case "key.orphan":
		d.Reason = orphanReason.String
		return queue(EventKeyOrphaned, d)
	case "key.roll":
		d.RolledTo = rolledTo.String
		return queue(WebhookKeyRolled, d)
	case AuditKeyLeaked:
		return queue(WebhookKeyLeaked, d)
	}
	return nil
}

// QueueExpiryNotices queues typ (key.expiring or key.expired) with the
// given threshold for up to limit live keys expiring in (from, to] of
// organizations with an enabled endpoint that receives typ, and records
// each notice (an endpoint added later still hears of the rest): a key
// hears of a threshold once, whichever replica finds it first, across
// restarts. It answers how many keys it queued for.
func (s *Store) QueueExpiryNotices(ctx context.Context, typ, threshold string, from, to, at time.Time, limit int) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		n = 0
		type due struct {
			orgID string
			d     WebhookData
		}
		keys, err := queryAll(ctx, tx, func(row rowScanner) (due, error) {
			var k due
			var exp time.Time
			err := row.Scan(&k.orgID, &k.d.KeyID, &k.d.KeyName, &k.d.AppID, &k.d.AppName, timeCol{&exp})
			k.d.ExpiresAt = &exp
			return k, err
		}, `SELECT k.org_id, k.id, k.name, k.app_id, a.name, k.expires_at FROM api_keys k JOIN apps a ON a.id = k.app_id
			WHERE k.expires_at > $1 AND k.expires_at <= $2 AND k.revoked_at IS NULL AND k.orphaned_at IS NULL AND k.rolled_to IS NULL
			AND k.org_id IN (SELECT org_id FROM webhook_endpoints WHERE enabled = 1 AND (events = '*' OR ' ' || events || ' ' LIKE $5))
			AND NOT EXISTS (SELECT 1 FROM webhook_expiry_notices n WHERE n.key_id = k.id AND n.threshold = $3)
			ORDER BY k.expires_at, k.id LIMIT $4`, micros(from), micros(to), threshold, limit, "% "+typ+" %")
		if err != nil {
			return err
		}
		for _, k := range keys {
			res, err := tx.ExecContext(ctx, `INSERT INTO webhook_expiry_notices (key_id, threshold, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, k.d.KeyID, threshold, micros(at))
			if err != nil {
				return err
			}
			if m, _ := res.RowsAffected(); m == 0 {
				continue // another replica told of it
			}
			k.d.Threshold = threshold
			if err := enqueueWebhook(ctx, tx, k.orgID, typ, at, WebhookPayload(typ, at, k.d), ""); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

const messageCols = `m.id, m.endpoint_id, m.org_id, e.url, m.seq, m.type, m.payload, m.created_at, m.status, m.attempts, m.next_attempt_at,
	m.last_attempt_at, m.last_status, m.last_error, m.last_latency_us, m.delivered_at`

func scanMessage(row rowScanner) (WebhookMessage, error) {
	var m WebhookMessage
	var payload string
	var latency int64
	err := row.Scan(&m.ID, &m.EndpointID, &m.OrgID, &m.URL, &m.Seq, &m.Type, &payload, timeCol{&m.CreatedAt}, &m.Status, &m.Attempts, timeCol{&m.NextAttemptAt},
		nullTimeCol{&m.LastAttemptAt}, &m.LastStatus, &m.LastError, &latency, nullTimeCol{&m.DeliveredAt})
	m.Payload, m.LastLatency = []byte(payload), time.Duration(latency)*time.Microsecond
	return m, err
}

// ClaimWebhookMessages leases up to limit messages due at now until
// now+lease, for this replica alone to deliver: each the oldest pending
// message of its enabled endpoint (an endpoint's messages go out in order,
// one at a time), found through the pending index per endpoint, so a
// backlog of thousands costs a claim no more than a few messages do. On PostgreSQL, FOR UPDATE SKIP LOCKED lets replicas
// claim side by side without taking the same message; SQLite has one
// writer. A replica that dies holding a lease leaves the message to be
// claimed again when the lease ends: at least once.
func (s *Store) ClaimWebhookMessages(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookMessage, error) {
	var out []WebhookMessage
	err := s.write(ctx, func(tx *sql.Tx) error {
		lock := ""
		if s.dialect == "postgres" {
			lock = ` FOR UPDATE OF m SKIP LOCKED`
		}
		ids, err := queryAll(ctx, tx, func(row rowScanner) (string, error) {
			var id string
			return id, row.Scan(&id)
		}, `SELECT m.id FROM webhook_endpoints e
			JOIN webhook_messages m ON m.endpoint_id = e.id
				AND m.seq = (SELECT min(p.seq) FROM webhook_messages p WHERE p.endpoint_id = e.id AND p.status = 'pending')
			WHERE e.enabled = 1 AND m.next_attempt_at <= $1 AND m.lease_until <= $1
			ORDER BY m.next_attempt_at, m.seq LIMIT $2`+lock, micros(now), limit)
		if err != nil || len(ids) == 0 {
			return err
		}
		marks, args := make([]string, len(ids)), make([]any, len(ids))
		for i, id := range ids {
			marks[i], args[i] = fmt.Sprintf("$%d", i+1), id
		}
		in := `(` + strings.Join(marks, ", ") + `)`
		leased := fmt.Sprintf("$%d", len(ids)+1)
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_messages SET lease_until = `+leased+` WHERE id IN `+in, append(args, micros(now.Add(lease)))...); err != nil {
			return err
		}
		out, err = queryAll(ctx, tx, scanMessage, `SELECT `+messageCols+` FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id WHERE m.id IN `+in+` ORDER BY m.next_attempt_at, m.seq`, args...)
		return err
	})
	return out, err
}

// WebhookAttempt is the outcome of one delivery attempt.
type WebhookAttempt struct {
	At        time.Time
	Delivered bool
	Status    int // the HTTP status, 0 when none came
	Error     string
	Latency   time.Duration
	// Next is when to try again; nil when the message failed for good,
	// which disables its endpoint with DisableReason.
	Next          *time.Time
	DisableReason string
}

// FinishWebhookAttempt records an attempt at a message claimed by this
// replica and ends its lease.
func (s *Store) FinishWebhookAttempt(ctx context.Context, id string, a WebhookAttempt) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		status, next := WebhookPending, a.At
		var delivered sql.NullInt64
		switch {
		case a.Delivered:
			status = WebhookDelivered
			delivered = sql.NullInt64{Int64: micros(a.At), Valid: true}
		case a.Next == nil:
			status = WebhookFailed
		default:
			next = *a.Next
		}
		var endpointID, orgID string
		err := tx.QueryRowContext(ctx, `UPDATE webhook_messages SET status = $1, attempts = attempts + 1, next_attempt_at = $2, lease_until = 0, last_attempt_at = $3,
			last_status = $4, last_error = $5, last_latency_us = $6, delivered_at = $7 WHERE id = $8 AND status = 'pending' RETURNING endpoint_id, org_id`,
			status, micros(next), micros(a.At), a.Status, a.Error, a.Latency.Microseconds(), delivered, id).Scan(&endpointID, &orgID)
		if err != nil {
			return notFound(err)
		}
		if status != WebhookFailed {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1 WHERE id = $2`, a.DisableReason, endpointID); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: a.At, Actor: "system", Action: AuditWebhookDisable, Target: endpointID, Detail: a.DisableReason})
	})
}

// ListWebhookMessages returns an endpoint's newest limit messages, newest
// first.
func (s *Store) ListWebhookMessages(ctx context.Context, orgID, endpointID string, limit int) ([]WebhookMessage, error) {
	msgs, err := queryAll(ctx, s.db, scanMessage, `SELECT `+messageCols+` FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id
		WHERE m.endpoint_id = $1 AND m.org_id = $2 ORDER BY m.seq DESC LIMIT $3`, endpointID, orgID, limit)
	return msgs, classify(err)
}

// RetryWebhookMessage puts a delivered or failed message of an endpoint
// back in the queue, due at at, or makes a pending one due at at; it keeps
// its webhook-id. A lease stays: a message in flight is not sent twice at
// once.
func (s *Store) RetryWebhookMessage(ctx context.Context, orgID, endpointID, id, actor string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, ErrNotFound, `UPDATE webhook_messages SET status = 'pending', next_attempt_at = $1 WHERE id = $2 AND endpoint_id = $3 AND org_id = $4`,
			micros(at), id, endpointID, orgID); err != nil {
			return err
		}
		return addAudit(ctx, tx, Audit{OrgID: orgID, At: at, Actor: actor, Action: AuditWebhookRetry, Target: id, Detail: "endpoint " + endpointID})
	})
}

// WebhookQueueDepth counts the messages waiting to be delivered.
func (s *Store) WebhookQueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_messages WHERE status = 'pending'`).Scan(&n)
	return n, classify(err)
}
