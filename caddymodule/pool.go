package caddymodule

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/appkeys/appkeys/internal/verify"
)

// engines holds one engine per distinct configuration and feeds one feed
// subscriber per app and key service. Both outlive config reloads: Caddy
// provisions the new config before cleaning up the old one, so the
// reference count never drops to zero across a reload with the same
// settings, and the cache stays warm. The verifier token is not part of
// either key: a reload that brings a rolled token keeps the cache and the
// subscriber and switches their calls to the new token (see tokenHolders).
var (
	engines   = caddy.NewUsagePool()
	feeds     = caddy.NewUsagePool()
	throttles = caddy.NewUsagePool()
)

// settings is what makes two handler instances share an engine; token is
// not part of it (see engines).
type settings struct {
	keyService, app, token string
	tls                    *tls.Config
	tlsID                  string // a hash of the TLS settings, for the pool keys
	engine                 verify.Config
}

// poolKey names the shared engine.
func (s settings) poolKey() string {
	return fmt.Sprintf("%s|%s|%s|%d|%s|%s|%s|%s|%s|%d|%d", s.keyService, s.app, s.tlsID,
		s.engine.CacheSize, s.engine.CacheTTL, s.engine.NegativeTTL, s.engine.StaleIfError, s.engine.Timeout, s.engine.FeedDownRevalidate,
		s.engine.MaxVerifyCalls, s.engine.LimitShare)
}

// feedKey names the shared feed subscriber.
func (s settings) feedKey() string {
	return s.keyService + "|" + s.app + "|" + s.tlsID
}

// pooledThrottle is one app's failed-attempts throttle. It holds no
// goroutine, so there is nothing to stop.
type pooledThrottle struct{ *verify.Throttle }

func (pooledThrottle) Destruct() error { return nil }

// pooledEngine is one engine with its client and its attachment to a feed.
type pooledEngine struct {
	*verify.Engine
	app        string
	client     *verify.Client
	feedKey    string
	feed       *pooledFeed
	stopFollow func()
	tokens     tokenHolders
}

func newPooledEngine(s settings, logger *zap.Logger) (*pooledEngine, error) {
	client, err := verify.NewClient(verify.ClientConfig{BaseURL: s.keyService, Token: s.token, TLS: s.tls})
	if err != nil {
		return nil, err
	}
	eng, err := verify.NewEngine(s.engine, client, newObserver(s.app))
	if err != nil {
		return nil, err
	}
	fk := s.feedKey()
	fv, _, err := feeds.LoadOrNew(fk, func() (caddy.Destructor, error) { return newPooledFeed(s, logger) })
	if err != nil {
		eng.Close()
		return nil, err
	}
	sf := fv.(*pooledFeed)
	return &pooledEngine{Engine: eng, app: s.app, client: client, feedKey: fk, feed: sf, stopFollow: eng.Follow(sf.feed),
		tokens: tokenHolders{client: client}}, nil
}

// hold makes h, configured with token, a user of the engine and its feed:
// their calls carry the token of the newest such handler.
func (s *pooledEngine) hold(h *Handler, token string) {
	s.tokens.hold(h, token)
	s.feed.tokens.hold(h, token)
}

// release ends h's use of the engine and its feed (its config is being
// cleaned up): their calls go back to the token of the newest remaining
// handler, which matters when a reload failed and the old config stays.
func (s *pooledEngine) release(h *Handler) {
	s.tokens.release(h)
	s.feed.tokens.release(h)
}

// Destruct runs when the last config using this engine is cleaned up.
func (s *pooledEngine) Destruct() error {
	s.stopFollow()
	s.Engine.Close()
	s.client.CloseIdleConnections()
	_, err := feeds.Delete(s.feedKey)
	return err
}

// pooledFeed is one app's change-feed subscriber. It has its own client so
// that its long-poll never holds a connection verify calls could use.
type pooledFeed struct {
	app    string
	feed   *verify.Feed
	client *verify.Client
	tokens tokenHolders
}

func newPooledFeed(s settings, logger *zap.Logger) (*pooledFeed, error) {
	client, err := verify.NewClient(verify.ClientConfig{BaseURL: s.keyService, Token: s.token, TLS: s.tls})
	if err != nil {
		return nil, err
	}
	f, err := verify.NewFeed(verify.FeedConfig{App: s.app}, client, newObserver(s.app))
	if err != nil {
		return nil, fmt.Errorf("change feed: %w", err)
	}
	f.Start()
	logger.Debug("started change-feed subscriber", zap.String("app", s.app))
	return &pooledFeed{app: s.app, feed: f, client: client, tokens: tokenHolders{client: client}}, nil
}

// Destruct stops the subscriber and waits for its goroutine.
func (f *pooledFeed) Destruct() error {
	f.feed.Close()
	f.client.CloseIdleConnections()
	return nil
}

// tokenHolders are the handlers (of the configs loaded now) sharing one
// client, in the order they were provisioned, each with its verifier
// token. The client carries the newest one's token: Caddy provisions a new
// config before it cleans up the old, so a reload with a rolled token
// switches at once, and a reload that fails switches back when its
// handlers are cleaned up.
type tokenHolders struct {
	client  *verify.Client
	mu      sync.Mutex
	holders []tokenHolder
}

type tokenHolder struct {
	h     *Handler
	token string
}

func (t *tokenHolders) hold(h *Handler, token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.holders = append(t.holders, tokenHolder{h, token})
	t.client.SetToken(token)
}

func (t *tokenHolders) release(h *Handler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.holders = slices.DeleteFunc(t.holders, func(x tokenHolder) bool { return x.h == h })
	if n := len(t.holders); n > 0 {
		t.client.SetToken(t.holders[n-1].token)
	}
}
