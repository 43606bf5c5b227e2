package caddymodule

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/appkeys/appkeys/internal/verify"
)

// engines holds one engine per distinct configuration and feeds one feed
// subscriber per app, key service and token. Both outlive config reloads:
// Caddy provisions the new config before cleaning up the old one, so the
// reference count never drops to zero across a reload with the same
// settings, and the cache stays warm.
var (
	engines   = caddy.NewUsagePool()
	feeds     = caddy.NewUsagePool()
	throttles = caddy.NewUsagePool()
)

// settings is what makes two handler instances share an engine.
type settings struct {
	keyService, app, token string
	tokenID                string // a hash of the token, for the pool keys
	tls                    *tls.Config
	tlsID                  string // a hash of the TLS settings, for the pool keys
	engine                 verify.Config
}

// tokenID names a verifier token in the pool keys by a hash, so that they
// are safe to print while debugging.
func tokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// poolKey names the shared engine.
func (s settings) poolKey() string {
	return fmt.Sprintf("%s|%s|%s|%s|%d|%s|%s|%s|%s|%s", s.keyService, s.app, s.tokenID, s.tlsID,
		s.engine.CacheSize, s.engine.CacheTTL, s.engine.NegativeTTL, s.engine.StaleIfError, s.engine.Timeout, s.engine.FeedDownRevalidate)
}

// feedKey names the shared feed subscriber.
func (s settings) feedKey() string {
	return s.keyService + "|" + s.app + "|" + s.tokenID + "|" + s.tlsID
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
	return &pooledEngine{Engine: eng, app: s.app, client: client, feedKey: fk, feed: sf, stopFollow: eng.Follow(sf.feed)}, nil
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
	return &pooledFeed{app: s.app, feed: f, client: client}, nil
}

// Destruct stops the subscriber and waits for its goroutine.
func (f *pooledFeed) Destruct() error {
	f.feed.Close()
	f.client.CloseIdleConnections()
	return nil
}
