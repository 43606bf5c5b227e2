// Package keyservice is the domain of appkeys: organizations, users and
// their roles, apps, API keys and their states, the Secrets store, the audit
// log and the change feed. It enforces who may do what; the store keeps it.
package keyservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/webhook"
)

// Config configures a Service.
type Config struct {
	Store     *store.Store
	MasterKey []byte
	// MaxKeyLifetime bounds key expiry; DefaultMaxKeyLifetime when zero.
	MaxKeyLifetime time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
	// EventRetention is how long feed events are kept; 7 days when zero.
	EventRetention time.Duration
	// FeedPoll is how often the feed is read from the store even though
	// no write was heard of: a safety net, as a replica hears of its own
	// writes at their commit and, on PostgreSQL, of every other replica's
	// by LISTEN/NOTIFY; 1s when zero.
	FeedPoll time.Duration
	// FeedTail is how many of the feed's newest events are kept in
	// memory for the long-polls; DefaultFeedTail when zero.
	FeedTail int
	// UsageFlush is how often last-used times are written; 30s when zero.
	UsageFlush time.Duration
	// UsageRetention is how long hourly usage buckets are kept;
	// DefaultUsageRetention when zero.
	UsageRetention time.Duration
	// KeyCountEvery is how often the keys are counted by state, for
	// metrics; DefaultKeyCountEvery when zero.
	KeyCountEvery time.Duration
	// VerifyFailureRate and VerifyFailureBurst bound failed verifies per
	// app (per verifier token); the defaults when zero.
	VerifyFailureRate  float64
	VerifyFailureBurst int
	// LeakAction is what a leak report does to a key that still works:
	// LeakRevoke (the default when empty) or LeakNotify.
	LeakAction string
	// LeakKeysURL or LeakKeysFile is where the public keys that sign leak
	// reports are read (GitHubLeakKeysURL in production); with neither,
	// every leak report is refused. LeakKeysClient fetches the URL; a
	// client with a timeout when nil.
	LeakKeysURL    string
	LeakKeysFile   string
	LeakKeysClient *http.Client
	// LeakReportRate and LeakReportBurst bound leak reports per client
	// address; the defaults when zero.
	LeakReportRate  float64
	LeakReportBurst int
	// WebhookPolicy says which addresses webhook endpoints may name; only
	// public ones by default.
	WebhookPolicy webhook.Policy
}

// Service is the key service's domain logic.
type Service struct {
	store       *store.Store
	keys        *keyring
	hasher      *apikey.Hasher
	now         func() time.Time
	log         *slog.Logger
	maxLifetime time.Duration
	retention   time.Duration
	feedPoll    time.Duration
	usageEvery  time.Duration
	// usageRetention is how long hourly usage buckets are kept.
	usageRetention time.Duration
	countEvery     time.Duration
	keyCounts      keyCounts
	feed           *feedTail
	feedCounters   feedCounters
	usage          *usageTracker
	vusage         *usageTracker // verifier tokens' last use
	verifiers      *verifierCache
	throttle       *failureThrottle
	// Leak reports (leaks.go).
	leakAction   string
	leakKeys     *leakKeys
	leakThrottle *failureThrottle
	// Webhooks (webhooks.go).
	webhookPolicy webhook.Policy
}

// New returns a Service. Call Run to start its background work.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("keyservice: no store")
	}
	kr, err := newKeyring(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	hasher, err := apikey.NewHasher(1, map[int][]byte{1: kr.keyHash})
	if err != nil {
		return nil, err
	}
	s := &Service{
		store:          cfg.Store,
		keys:           kr,
		hasher:         hasher,
		now:            cfg.Now,
		log:            cfg.Logger,
		maxLifetime:    cfg.MaxKeyLifetime,
		retention:      cfg.EventRetention,
		feedPoll:       cfg.FeedPoll,
		usageEvery:     cfg.UsageFlush,
		usageRetention: cfg.UsageRetention,
		countEvery:     cfg.KeyCountEvery,
		feed:           newFeedTail(cfg.FeedTail),
		usage:          newUsageTracker(),
		vusage:         newUsageTracker(),
		verifiers:      newVerifierCache(),
		throttle:       newFailureThrottle(cfg.VerifyFailureRate, cfg.VerifyFailureBurst),
	}
	s.webhookPolicy = cfg.WebhookPolicy
	if s.now == nil {
		s.now = time.Now
	}
	switch cfg.LeakAction {
	case "", LeakRevoke:
		s.leakAction = LeakRevoke
	case LeakNotify:
		s.leakAction = LeakNotify
	default:
		return nil, fmt.Errorf("keyservice: leak action %q: use %s or %s", cfg.LeakAction, LeakRevoke, LeakNotify)
	}
	s.leakThrottle = newFailureThrottle(orDefault(cfg.LeakReportRate, DefaultLeakReportRate), int(orDefault(float64(cfg.LeakReportBurst), DefaultLeakReportBurst)))
	s.leakThrottle.max = maxLeakReporters
	if s.leakKeys, err = newLeakKeys(cfg.LeakKeysURL, cfg.LeakKeysFile, cfg.LeakKeysClient, s.now); err != nil {
		return nil, err
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxLifetime <= 0 {
		s.maxLifetime = DefaultMaxKeyLifetime
	}
	if s.retention <= 0 {
		s.retention = 7 * 24 * time.Hour
	}
	if s.feedPoll <= 0 {
		s.feedPoll = time.Second
	}
	if s.usageEvery <= 0 {
		s.usageEvery = 30 * time.Second
	}
	if s.usageRetention <= 0 {
		s.usageRetention = DefaultUsageRetention
	}
	if s.countEvery <= 0 {
		s.countEvery = DefaultKeyCountEvery
	}
	cfg.Store.OnFeedChange(s.heardFeedChange)
	return s, nil
}

// Run does the background work until ctx ends: it follows the feed,
// flushes last-used times, counts keys by state, prunes old events and
// sweeps expired console sessions. It flushes once more before it returns.
//
// Following the feed has a loop of its own: it is what wakes the
// sidecars' long-polls, so a revocation must never wait behind a slow
// flush (thousands of last-used updates on a busy PostgreSQL take a second)
// or a prune.
func (s *Service) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.housekeep(ctx)
	}()
	s.followFeed(ctx)
	<-done
}

// housekeep flushes last-used times, counts keys by state, prunes old
// events and sweeps expired console sessions until ctx ends, then flushes
// once more.
func (s *Service) housekeep(ctx context.Context) {
	usageTick := time.NewTicker(s.usageEvery)
	countTick := time.NewTicker(s.countEvery)
	pruneTick := time.NewTicker(time.Hour)
	defer usageTick.Stop()
	defer countTick.Stop()
	defer pruneTick.Stop()
	s.refreshKeyCounts(ctx)
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.FlushUsage(flushCtx)
			cancel()
			return
		case <-usageTick.C:
			s.FlushUsage(ctx)
		case <-countTick.C:
			s.refreshKeyCounts(ctx)
		case <-pruneTick.C:
			if n, err := s.store.PruneEvents(ctx, s.now().Add(-s.retention)); err != nil {
				s.log.Warn("prune events", "err", err)
			} else if n > 0 {
				s.log.Info("pruned feed events", "count", n)
			}
			s.sweepConsoleSessions(ctx)
			s.pruneUsage(ctx)
		}
	}
}

// FlushUsage writes pending last-used times of keys and verifier tokens.
func (s *Service) FlushUsage(ctx context.Context) {
	flushUsage(ctx, s, s.usage, "keys", s.store.TouchKeys)
	flushUsage(ctx, s, s.vusage, "verifier tokens", s.store.TouchVerifierTokens)
}

func flushUsage(ctx context.Context, s *Service, u *usageTracker, what string, touch func(context.Context, map[string]time.Time) error) {
	pending := u.take()
	if len(pending) == 0 {
		return
	}
	if err := touch(ctx, pending); err != nil {
		u.restore(pending)
		s.log.Warn("write last-used times", "of", what, "count", len(pending), "err", err)
	}
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error { return s.store.Ping(ctx) }

// Now returns the service's clock reading.
func (s *Service) Now() time.Time { return s.now() }

// each maps a store read onto the domain's type, never nil, so an empty list
// is [] and not null on the wire.
func each[S, D any](in []S, f func(S) D) []D {
	out := make([]D, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func orDefault(v, def float64) float64 {
	if v <= 0 {
		return def
	}
	return v
}
