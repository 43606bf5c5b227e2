package keyservice

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Usage outcomes, as a sidecar counts them and the API shows them.
const (
	OutcomeAllowed     = "allowed"
	OutcomeRateLimited = "rate_limited"
	OutcomeForbidden   = "forbidden"
)

// MaxUsageReportKeys bounds the keys of one usage report: a sidecar with
// more sends several.
const MaxUsageReportKeys = store.MaxUsageBatch

// MaxUsageCount bounds one key's count of one outcome in one report: a
// sidecar reports every few seconds, and a billion requests in that time
// is a lie, not traffic.
const MaxUsageCount = 1_000_000_000

// DefaultUsageRetention is how long hourly usage buckets are kept.
const DefaultUsageRetention = 90 * 24 * time.Hour

// MaxUsageWindow bounds a usage read: the default retention.
const MaxUsageWindow = DefaultUsageRetention

// UsageCount is how many requests of a key a sidecar counted, by outcome,
// or a sum of them over a window.
type UsageCount = store.UsageCount

// UsagePoint is one hour of a key's requests.
type UsagePoint = store.UsagePoint

// UsageReported is what a report did: how many of its keys were counted
// and how many were left out (not keys of the reporting app).
type UsageReported struct {
	Accepted, Ignored int
}

// ReportUsage adds a sidecar's counts to the current hour's buckets, in
// one write, and raises the counted keys' last use to now. Only the
// caller's app's keys are counted: an entry for any other id (another
// app's key, another organization's, an id that does not exist) is
// ignored, and the answer says how many were, without naming them, so
// a report tells its sender nothing it did not know. A malformed report
// (a negative or absurd count, an id twice, too many keys) is refused
// whole.
func (s *Service) ReportUsage(ctx context.Context, c Caller, counts []UsageCount) (UsageReported, error) {
	if c.App == nil {
		return UsageReported{}, errorf(KindForbidden, "usage reports need an app's verifier token")
	}
	if len(counts) > MaxUsageReportKeys {
		return UsageReported{}, errorf(KindBadRequest, "a usage report holds at most %d keys; send several", MaxUsageReportKeys)
	}
	seen := make(map[string]struct{}, len(counts))
	keep := make([]UsageCount, 0, len(counts))
	for _, u := range counts {
		if !strings.HasPrefix(u.KeyID, "key_") || len(u.KeyID) > 64 {
			return UsageReported{}, errorf(KindBadRequest, "each entry needs a key_id (key_…)")
		}
		if _, dup := seen[u.KeyID]; dup {
			return UsageReported{}, errorf(KindBadRequest, "key %s is reported twice; sum its counts", u.KeyID)
		}
		seen[u.KeyID] = struct{}{}
		for _, n := range []int64{u.Allowed, u.RateLimited, u.Forbidden} {
			if n < 0 || n > MaxUsageCount {
				return UsageReported{}, errorf(KindBadRequest, "counts must be from 0 to %d", MaxUsageCount)
			}
		}
		if u.Total() > 0 {
			keep = append(keep, u)
		}
	}
	now := s.now().UTC()
	taken, err := s.store.RecordUsage(ctx, c.App.ID, now, keep)
	if err != nil {
		return UsageReported{}, s.storeErr(err)
	}
	// Last Used: a key the sidecar let through was used, even if it was
	// served from the cache and never verified here.
	for _, u := range keep {
		if u.Allowed > 0 {
			if _, ok := slices.BinarySearch(taken, u.KeyID); ok {
				s.usage.markID(u.KeyID, nil, now)
			}
		}
	}
	return UsageReported{Accepted: len(taken), Ignored: len(keep) - len(taken)}, nil
}

// KeyUsage returns a key's hourly requests with from <= hour < to, one
// point for every hour (zero where there were none). from is rounded down
// and to up to the hour; the window is at most MaxUsageWindow. A key of
// another organization is not found.
func (s *Service) KeyUsage(ctx context.Context, c Caller, keyID string, from, to time.Time) ([]UsagePoint, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	from, to, err = usageWindow(from, to)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetKey(ctx, u.OrgID, keyID); err != nil {
		return nil, s.notFound(err, "key %s not found", keyID)
	}
	stored, err := s.store.KeyUsage(ctx, u.OrgID, keyID, from, to)
	if err != nil {
		return nil, s.storeErr(err)
	}
	out := make([]UsagePoint, 0, int(to.Sub(from)/time.Hour))
	i := 0
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		p := UsagePoint{Hour: h}
		if i < len(stored) && stored[i].Hour.Equal(h) {
			p = stored[i]
			i++
		}
		out = append(out, p)
	}
	return out, nil
}

// AppUsage sums each key's requests of an app of the caller's
// organization over [from, to), hours rounded as in KeyUsage. Keys with
// no requests are not listed.
func (s *Service) AppUsage(ctx context.Context, c Caller, appID string, from, to time.Time) ([]UsageCount, time.Time, time.Time, error) {
	u, err := c.user()
	if err != nil {
		return nil, from, to, err
	}
	from, to, err = usageWindow(from, to)
	if err != nil {
		return nil, from, to, err
	}
	if _, err := s.store.GetApp(ctx, u.OrgID, appID, s.now()); err != nil {
		return nil, from, to, s.notFound(err, "app %s not found", appID)
	}
	tot, err := s.store.UsageTotals(ctx, u.OrgID, appID, from, to)
	return tot, from, to, s.storeErr(err)
}

// RecentRequests is each key's number of requests (every outcome) in the
// last 24 hours, by key id, of the caller's organization: the key lists'
// Requests (24h) column.
func (s *Service) RecentRequests(ctx context.Context, c Caller) (map[string]int64, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	to := s.now().UTC().Truncate(time.Hour).Add(time.Hour)
	tot, err := s.store.UsageTotals(ctx, u.OrgID, "", to.Add(-24*time.Hour), to)
	if err != nil {
		return nil, s.storeErr(err)
	}
	out := make(map[string]int64, len(tot))
	for _, t := range tot {
		out[t.KeyID] = t.Total()
	}
	return out, nil
}

// UsageWindow rounds a usage read's window to whole hours and checks it.
func usageWindow(from, to time.Time) (time.Time, time.Time, error) {
	from = from.UTC().Truncate(time.Hour)
	if t := to.UTC().Truncate(time.Hour); t.Before(to) {
		to = t.Add(time.Hour)
	} else {
		to = t
	}
	switch {
	case !from.Before(to):
		return from, to, errorf(KindBadRequest, "from must be before to")
	case to.Sub(from) > MaxUsageWindow:
		return from, to, errorf(KindBadRequest, "a usage window spans at most %d days", int(MaxUsageWindow/(24*time.Hour)))
	}
	return from, to, nil
}

// pruneUsage drops hourly buckets past the retention.
func (s *Service) pruneUsage(ctx context.Context) {
	if n, err := s.store.PruneUsage(ctx, s.now().Add(-s.usageRetention)); err != nil {
		s.log.Warn("prune usage", "err", err)
	} else if n > 0 {
		s.log.Info("pruned hourly usage buckets", "count", n)
	}
}

// GetKey returns a key of the caller's organization, revoked or not, with
// its state at the service's clock and its freshest Last Used. Another
// organization's key is not found.
func (s *Service) GetKey(ctx context.Context, c Caller, id string) (Key, error) {
	u, err := c.user()
	if err != nil {
		return Key{}, err
	}
	k, err := s.store.GetKey(ctx, u.OrgID, id)
	if err != nil {
		return Key{}, s.notFound(err, "key %s not found", id)
	}
	k.LastUsedAt = s.usage.latest(k.ID, k.LastUsedAt)
	return keyOf(k, s.now()), nil
}
