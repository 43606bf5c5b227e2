package caddymodule

import (
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

// sharedThrottle is one app's failed-attempts throttle. It holds no
// goroutine, so there is nothing to stop.
type sharedThrottle struct{ *verify.Throttle }

func (sharedThrottle) Destruct() error { return nil }

// shared is one engine with its client and its attachment to a feed.
type shared struct {
	app        string
	engine     *verify.Engine
	client     *verify.Client
	feedKey    string
	feed       *sharedFeed
	stopFollow func()
}

func newShared(s settings, logger *zap.Logger) (*shared, error) {
	client, err := verify.NewClient(verify.ClientConfig{BaseURL: s.keyService, Token: s.token, TLS: s.tls})
	if err != nil {
		return nil, err
	}
	eng, err := verify.NewEngine(s.engine, client, newObserver(s.app))
	if err != nil {
		return nil, err
	}
	fk := s.feedKey()
	fv, _, err := feeds.LoadOrNew(fk, func() (caddy.Destructor, error) { return newSharedFeed(s, logger) })
	if err != nil {
		eng.Close()
		return nil, err
	}
	sf := fv.(*sharedFeed)
	return &shared{app: s.app, engine: eng, client: client, feedKey: fk, feed: sf, stopFollow: eng.Follow(sf.feed)}, nil
}

// Destruct runs when the last config using this engine is cleaned up.
func (s *shared) Destruct() error {
	s.stopFollow()
	s.engine.Close()
	s.client.CloseIdleConnections()
	_, err := feeds.Delete(s.feedKey)
	return err
}

// sharedFeed is one app's change-feed subscriber. It has its own client so
// that its long-poll never holds a connection verify calls could use.
type sharedFeed struct {
	app    string
	feed   *verify.Feed
	client *verify.Client
}

func newSharedFeed(s settings, logger *zap.Logger) (*sharedFeed, error) {
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
	return &sharedFeed{app: s.app, feed: f, client: client}, nil
}

// Destruct stops the subscriber and waits for its goroutine.
func (f *sharedFeed) Destruct() error {
	f.feed.Close()
	f.client.CloseIdleConnections()
	return nil
}
