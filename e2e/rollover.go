package e2e

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// timeRollovers rolls n keys cached at site, each with an overlap of
// overlap (issue 14), and times, for each, the old key's refusal at the
// sidecar from the overlap's end (the old key's new expires_at) to the
// first 401. Up to that end the old key must pass: a 401 earlier is a
// failed request of a client still inside the overlap, and an error.
func (r *revocationRun) timeRollovers(ctx context.Context, site Site, n int, overlap string) (Latencies, error) {
	var out Latencies
	for range n {
		k, err := r.cachedKey(ctx, r.owner, site)
		if err != nil {
			return nil, err
		}
		rolled, err := r.owner.RollKey(ctx, k.ID, client.RollKeyRequest{ExpiresAt: time.Now().Add(24 * time.Hour), Overlap: overlap})
		if err != nil {
			return nil, fmt.Errorf("roll key: %w", err)
		}
		end := rolled.Previous.ExpiresAt
		for {
			status, err := r.get(ctx, site, k.PlainKey)
			if err != nil {
				return nil, err
			}
			switch received := time.Now(); {
			case status == http.StatusUnauthorized && received.Before(end):
				return nil, fmt.Errorf("old key refused %s before its overlap's end", end.Sub(received))
			case status == http.StatusUnauthorized:
				out = append(out, time.Since(end))
			case status != http.StatusOK:
				return nil, fmt.Errorf("sidecar answered %d during a roll's overlap", status)
			case time.Since(end) > r.cfg.Bound:
				return nil, fmt.Errorf("old key still accepted %s after its overlap's end", r.cfg.Bound)
			}
			if status == http.StatusUnauthorized {
				break
			}
			if r.cfg.PollEvery > 0 {
				time.Sleep(r.cfg.PollEvery)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	return out, nil
}
