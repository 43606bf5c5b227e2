package keyservice

import (
	"context"
	"fmt"
	"time"

	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/webhook"
)

// Expiry notice thresholds: key.expiring a week and a day before a key's
// expiry, key.expired in the day after it.
var expiryNotices = []struct {
	typ, threshold string
	from, to       time.Duration // of now: keys expiring in (now+from, now+to]
}{
	{store.WebhookKeyExpiring, "7d", 24 * time.Hour, 7 * 24 * time.Hour},
	{store.WebhookKeyExpiring, "1d", 0, 24 * time.Hour},
	{store.WebhookKeyExpired, "expired", -24 * time.Hour, 0},
}

// WebhookQueue is the delivery queue the webhook worker takes its
// messages from.
func (s *Service) WebhookQueue() webhook.Queue { return webhookQueue{s} }

type webhookQueue struct{ s *Service }

func (q webhookQueue) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]webhook.Message, error) {
	msgs, err := q.s.store.ClaimWebhookMessages(ctx, now, lease, limit)
	if err != nil {
		return nil, err
	}
	out := make([]webhook.Message, 0, len(msgs))
	keys := map[string][][]byte{}
	for _, m := range msgs {
		k, ok := keys[m.EndpointID]
		if !ok {
			if k, err = q.signingKeys(ctx, m.OrgID, m.EndpointID, now); err != nil {
				return nil, err
			}
			keys[m.EndpointID] = k
		}
		out = append(out, webhook.Message{ID: m.ID, EndpointID: m.EndpointID, URL: m.URL, Type: m.Type, Payload: m.Payload,
			Attempts: m.Attempts, CreatedAt: m.CreatedAt, Keys: k})
	}
	return out, nil
}

// signingKeys opens an endpoint's secrets that sign at now.
func (q webhookQueue) signingKeys(ctx context.Context, orgID, endpointID string, now time.Time) ([][]byte, error) {
	secs, err := q.s.store.WebhookSecrets(ctx, endpointID, now)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for _, sec := range secs {
		secret, err := q.s.keys.open(orgID, "webhook:"+endpointID, sec.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", endpointID, err)
		}
		k, err := webhook.SecretBytes(string(secret))
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", endpointID, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (q webhookQueue) Finish(ctx context.Context, id string, a webhook.Attempt) error {
	return q.s.store.FinishWebhookAttempt(ctx, id, store.WebhookAttempt{At: a.At, Delivered: a.Delivered, Status: a.Status, Error: a.Error,
		Latency: a.Latency, Next: a.Next, DisableReason: a.GiveUp})
}

func (q webhookQueue) Depth(ctx context.Context) (int, error) {
	return q.s.store.WebhookQueueDepth(ctx)
}

// QueueExpiryNotices queues key.expiring and key.expired for the keys
// that crossed a threshold, each once (the store records the notices).
func (q webhookQueue) QueueExpiryNotices(ctx context.Context, now time.Time) error {
	const page = 500
	for _, n := range expiryNotices {
		for range 100 {
			c, err := q.s.store.QueueExpiryNotices(ctx, n.typ, n.threshold, now.Add(n.from), now.Add(n.to), now, page)
			if err != nil {
				return err
			}
			if c < page {
				break
			}
		}
	}
	return nil
}
