package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/appkeys/appkeys/internal/verify"
)

// usages holds one usage reporter per app, key service and reporting
// settings. Like the engines it outlives a reload with the same settings,
// so the counts of the requests served across a reload go out in one
// report, neither lost nor sent twice. A reload that changes the settings
// makes a new reporter; the old one reports what it holds when its last
// config is cleaned up (Destruct).
var usages = caddy.NewUsagePool()

// pooledUsage is one reporter with its own client (a report never waits
// behind a verify's connection) and the tokens of the handlers using it.
type pooledUsage struct {
	*verify.Usage
	client *verify.Client
	tokens tokenHolders
}

// Destruct reports what is left, within the reporter's timeout, and stops.
func (u *pooledUsage) Destruct() error {
	u.Usage.Close()
	u.client.CloseIdleConnections()
	return nil
}

// provisionUsage attaches the handler to its app's reporter.
func (h *Handler) provisionUsage(s settings) error {
	key := fmt.Sprintf("%s|%s|%s", s.feedKey(), time.Duration(h.UsageInterval), time.Duration(h.UsageDropAfter))
	v, _, err := usages.LoadOrNew(key, func() (caddy.Destructor, error) {
		client, err := verify.NewClient(verify.ClientConfig{BaseURL: s.keyService, Token: s.token, TLS: s.tls})
		if err != nil {
			return nil, err
		}
		u, err := verify.NewUsage(verify.UsageConfig{Interval: time.Duration(h.UsageInterval), DropAfter: time.Duration(h.UsageDropAfter)},
			client, newUsageObserver(s.app))
		if err != nil {
			return nil, err
		}
		u.Start()
		return &pooledUsage{Usage: u, client: client, tokens: tokenHolders{client: client}}, nil
	})
	if err != nil {
		return fmt.Errorf("appkey_auth: usage reporter: %w", err)
	}
	h.usage, h.usageKey = v.(*pooledUsage), key
	h.usage.tokens.hold(h, s.token)
	return nil
}

// countUsage counts one request that carried the valid key keyID, by what
// became of it. Every request with a valid key calls it once: allowed from
// admit, and rate_limited or forbidden where the key's limits refuse it.
func (h *Handler) countUsage(keyID string, o verify.Outcome) {
	h.usage.Count(keyID, o)
}

var (
	usageReported = appCounter("appkey_auth_usage_reported_total",
		"Requests whose per-key counts the key service took (POST /v1/usage).")
	usageOverflow = appCounter("appkey_auth_usage_overflow_total",
		"Requests not counted per key because the batch already held its bound of distinct keys.")
	usageDropped = appCounter("appkey_auth_usage_dropped_total",
		"Requests counted per key but never reported: the key service stayed away past usage_drop_after, was away at shutdown, or refused the report.")
)

func init() { collectors = append(collectors, usageReported, usageOverflow, usageDropped) }

// usageObserver feeds one app's reporter into the collectors.
type usageObserver struct{ reported, overflow, dropped prometheus.Counter }

func newUsageObserver(app string) *usageObserver {
	return &usageObserver{usageReported.WithLabelValues(app), usageOverflow.WithLabelValues(app), usageDropped.WithLabelValues(app)}
}

func (o *usageObserver) UsageReported(_ int, n int64) { o.reported.Add(float64(n)) }
func (o *usageObserver) UsageOverflow()               { o.overflow.Inc() }
func (o *usageObserver) UsageDropped(n int64)         { o.dropped.Add(float64(n)) }

var _ verify.UsageObserver = (*usageObserver)(nil)
