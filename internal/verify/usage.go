package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is what became of a request that carried a valid key: let
// through, or refused for the key's own limits. The key service keeps
// hourly counts of each (POST /v1/usage).
type Outcome uint8

// The outcomes, as the key service names them.
const (
	OutcomeAllowed     Outcome = iota // let through
	OutcomeRateLimited                // refused with 429 for the key's rate limit
	OutcomeForbidden                  // refused with 403 for the key's allowed networks
	numOutcomes
)

func (o Outcome) String() string {
	switch o {
	case OutcomeAllowed:
		return "allowed"
	case OutcomeRateLimited:
		return "rate_limited"
	case OutcomeForbidden:
		return "forbidden"
	}
	return "unknown"
}

// UsageCount is one key's requests by outcome, as a report carries it.
type UsageCount struct {
	KeyID       string `json:"key_id"`
	Allowed     int64  `json:"allowed"`
	RateLimited int64  `json:"rate_limited"`
	Forbidden   int64  `json:"forbidden"`
}

func (c UsageCount) total() int64 { return c.Allowed + c.RateLimited + c.Forbidden }

// UsageSender sends one report; *Client is the production one.
type UsageSender interface {
	ReportUsage(ctx context.Context, keys []UsageCount) error
}

// UsageObserver hears what the reporter did, for metrics.
type UsageObserver interface {
	// UsageReported: a report of keys keys and requests requests was taken.
	UsageReported(keys int, requests int64)
	// UsageOverflow: a request was not counted because the batch already
	// held MaxKeys distinct keys.
	UsageOverflow()
	// UsageDropped: requests counted but never reported, because the key
	// service stayed away longer than DropAfter or refused the report.
	UsageDropped(requests int64)
}

// UsageConfig tunes a Usage. Zero values take the defaults named below.
type UsageConfig struct {
	// Interval is how often counts are reported (default 10s).
	Interval time.Duration
	// MaxKeys bounds the distinct keys counted between two reports, and
	// kept while the key service is away (default 10,000). Requests of
	// further keys are counted in UsageOverflow only.
	MaxKeys int
	// DropAfter is how long counts wait for a key service that fails
	// before they are dropped (default 5m).
	DropAfter time.Duration
	// Timeout bounds each report call (default 5s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ReportBatch is the most keys one report carries, as the key service
// takes them; more are sent as several reports.
const ReportBatch = 1000

// keyCounts is one key's counters; atomics, so that counting a known key
// takes only the read lock.
type keyCounts [numOutcomes]atomic.Int64

// Usage counts requests per key and outcome, and reports them to the key
// service every Interval and at Close. It is safe for concurrent use.
type Usage struct {
	cfg  UsageConfig
	svc  UsageSender
	obs  UsageObserver
	mu   sync.RWMutex
	cur  map[string]*keyCounts
	send sync.Mutex // one flush at a time; guards pending and since
	// pending are counts taken from cur that no report has carried yet;
	// since is when the oldest of them was taken.
	pending map[string]UsageCount
	since   time.Time

	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	once    sync.Once
}

// NewUsage returns a Usage reporting to svc; call Start to report on a
// schedule.
func NewUsage(cfg UsageConfig, svc UsageSender, obs UsageObserver) (*Usage, error) {
	if svc == nil || obs == nil {
		return nil, errors.New("usage: no sender or observer")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 10_000
	}
	if cfg.DropAfter == 0 {
		cfg.DropAfter = 5 * time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval < 0 || cfg.MaxKeys < 0 || cfg.DropAfter < 0 || cfg.Timeout < 0 {
		return nil, errors.New("usage: settings must be positive")
	}
	return &Usage{cfg: cfg, svc: svc, obs: obs, cur: make(map[string]*keyCounts), pending: make(map[string]UsageCount),
		stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Count counts one request of the key with this id.
func (u *Usage) Count(keyID string, o Outcome) {
	if o >= numOutcomes || keyID == "" {
		return
	}
	u.mu.RLock()
	c := u.cur[keyID]
	if c != nil {
		c[o].Add(1)
	}
	u.mu.RUnlock()
	if c != nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if c = u.cur[keyID]; c == nil {
		if len(u.cur) >= u.cfg.MaxKeys {
			u.obs.UsageOverflow()
			return
		}
		c = new(keyCounts)
		u.cur[keyID] = c
	}
	c[o].Add(1)
}

// Start reports every Interval until Close.
func (u *Usage) Start() {
	if !u.started.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer close(u.done)
		t := time.NewTicker(u.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-u.stop:
				return
			case <-t.C:
				u.Flush(context.Background())
			}
		}
	}()
}

// Close stops the schedule and reports what is left, once, within
// Timeout: counts the key service does not take then are dropped.
func (u *Usage) Close() {
	u.once.Do(func() {
		close(u.stop)
		if u.started.Load() {
			<-u.done
		}
		ctx, cancel := context.WithTimeout(context.Background(), u.cfg.Timeout)
		defer cancel()
		u.Flush(ctx)
		u.send.Lock()
		u.dropPending()
		u.send.Unlock()
	})
}

// take moves the current counts into pending and starts a new batch.
func (u *Usage) take(now time.Time) {
	u.mu.Lock()
	cur := u.cur
	u.cur = make(map[string]*keyCounts, len(cur))
	u.mu.Unlock()
	for id, c := range cur {
		n := UsageCount{KeyID: id, Allowed: c[OutcomeAllowed].Load(), RateLimited: c[OutcomeRateLimited].Load(), Forbidden: c[OutcomeForbidden].Load()}
		p, ok := u.pending[id]
		if !ok && len(u.pending) >= u.cfg.MaxKeys {
			u.obs.UsageDropped(n.total()) // the key service is away and the backlog full
			continue
		}
		p.KeyID = id
		p.Allowed += n.Allowed
		p.RateLimited += n.RateLimited
		p.Forbidden += n.Forbidden
		u.pending[id] = p
	}
	if len(u.pending) > 0 && u.since.IsZero() {
		u.since = now
	}
}

// Flush reports the counts now, in reports of at most ReportBatch keys.
// Counts a report failed to carry stay pending for the next flush, until
// DropAfter; a report the key service refuses as malformed (4xx) is
// dropped at once, as sending it again would not help.
func (u *Usage) Flush(ctx context.Context) error {
	u.send.Lock()
	defer u.send.Unlock()
	now := u.cfg.Now()
	u.take(now)
	ids := slices.Sorted(maps.Keys(u.pending))
	var err error
	for chunk := range slices.Chunk(ids, ReportBatch) {
		batch := make([]UsageCount, len(chunk))
		var requests int64
		for i, id := range chunk {
			batch[i] = u.pending[id]
			requests += batch[i].total()
		}
		cctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
		err = u.svc.ReportUsage(cctx, batch)
		cancel()
		var se *StatusError
		switch {
		case err == nil:
			u.obs.UsageReported(len(batch), requests)
		case errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests &&
			se.Status != http.StatusUnauthorized:
			// Refused as it is (a 401 may be a token being rolled: keep).
			u.obs.UsageDropped(requests)
		default:
			if now.Sub(u.since) < u.cfg.DropAfter {
				return err // keep everything pending; the next flush retries
			}
			u.obs.UsageDropped(requests)
		}
		for _, id := range chunk {
			delete(u.pending, id)
		}
	}
	if len(u.pending) == 0 {
		u.since = time.Time{}
	}
	return err
}

// dropPending drops what no report carried, counting it.
func (u *Usage) dropPending() {
	var n int64
	for _, c := range u.pending {
		n += c.total()
	}
	if n > 0 {
		u.obs.UsageDropped(n)
	}
	clear(u.pending)
	u.since = time.Time{}
}

// ReportUsage sends one usage report (POST /v1/usage).
func (c *Client) ReportUsage(ctx context.Context, keys []UsageCount) error {
	body, err := json.Marshal(struct {
		Keys []UsageCount `json:"keys"`
	}{keys})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.usageURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", *c.auth.Load())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	_, err = c.do(req)
	return err
}
