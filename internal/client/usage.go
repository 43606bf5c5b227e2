package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// UsageCount is one key's requests by outcome: in a sidecar's report, or
// summed over a window.
type UsageCount struct {
	KeyID       string `json:"key_id"`
	Allowed     int64  `json:"allowed"`
	RateLimited int64  `json:"rate_limited"`
	Forbidden   int64  `json:"forbidden"`
}

// Total is the sum of the outcomes.
func (u UsageCount) Total() int64 { return u.Allowed + u.RateLimited + u.Forbidden }

// UsageReported is the answer to a usage report: how many of its keys
// were counted, and how many left out as not the app's.
type UsageReported struct {
	Accepted int `json:"accepted"`
	Ignored  int `json:"ignored"`
}

// UsagePoint is one hour of a key's requests.
type UsagePoint struct {
	Hour        time.Time `json:"hour"`
	Allowed     int64     `json:"allowed"`
	RateLimited int64     `json:"rate_limited"`
	Forbidden   int64     `json:"forbidden"`
}

// KeyUsage is a key's hourly points over [From, To), every hour listed.
type KeyUsage struct {
	KeyID  string       `json:"key_id"`
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	Points []UsagePoint `json:"points"`
}

// AppUsage is each key's totals of an app over [From, To); keys with no
// requests are not listed.
type AppUsage struct {
	AppID string       `json:"app_id"`
	From  time.Time    `json:"from"`
	To    time.Time    `json:"to"`
	Keys  []UsageCount `json:"keys"`
}

// ReportUsage sends a sidecar's counts (it needs the app's verifier token).
func (c *Client) ReportUsage(ctx context.Context, keys []UsageCount) (*UsageReported, error) {
	var out UsageReported
	body := struct {
		Keys []UsageCount `json:"keys"`
	}{keys}
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/usage", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// usageQuery is from= and to=, each left out when zero.
func usageQuery(from, to time.Time) url.Values {
	q := url.Values{}
	if !from.IsZero() {
		q.Set("from", from.UTC().Format(time.RFC3339))
	}
	if !to.IsZero() {
		q.Set("to", to.UTC().Format(time.RFC3339))
	}
	return q
}

// KeyUsage returns a key's hourly requests over [from, to), rounded out to
// whole hours; zero times take the service's defaults (the last 24 hours).
func (c *Client) KeyUsage(ctx context.Context, keyID string, from, to time.Time) (*KeyUsage, error) {
	if err := checkID("key id", keyID); err != nil {
		return nil, err
	}
	var out KeyUsage
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/keys/" + seg(keyID) + "/usage", query: usageQuery(from, to)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AppUsage returns each key's totals of an app over [from, to), as KeyUsage
// rounds it.
func (c *Client) AppUsage(ctx context.Context, appID string, from, to time.Time) (*AppUsage, error) {
	if err := checkID("app id", appID); err != nil {
		return nil, err
	}
	var out AppUsage
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/apps/" + seg(appID) + "/usage", query: usageQuery(from, to)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
