package verify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/appkeys/appkeys/internal/apikey"
)

// maxBody bounds every answer read from the key service: a verify answer is
// a few hundred bytes and an events page a few hundred events, so anything
// larger is a misbehaving or hostile server, not data to buffer.
const maxBody = 1 << 20

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is the key service's root, e.g. http://127.0.0.1:8700.
	BaseURL string
	// Token is the app's verifier token, sent as a Bearer token.
	Token string
	// TLS, when set, is the TLS configuration of the default transport:
	// a custom CA in RootCAs, a ServerName other than the URL's host.
	// It is ignored when Transport is set.
	TLS *tls.Config
	// Transport replaces the tuned default transport (tests).
	Transport http.RoundTripper
}

// Client speaks the two calls of the key service the sidecar needs.
// It applies no timeout itself: callers bound each call with their context.
type Client struct {
	verifyURL string
	eventsURL string
	usageURL  string
	// auth is the Authorization header value: swapped by SetToken while
	// calls are in flight, so a rolled verifier token needs no new client
	// (nor a new cache or feed subscriber).
	auth atomic.Pointer[string]
	http *http.Client
}

// NewTransport returns the transport the sidecar uses by default. Go's
// default keeps only 2 idle connections per host; a sidecar sending every
// cache miss to one key service wants many more, or each burst pays new TCP
// (and TLS) handshakes.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   2 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 0, // long-polls wait on purpose; contexts bound each call
	}
}

// NewClient checks the configuration and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("key service URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("key service URL %q: want http:// or https:// and a host", cfg.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("key service URL %q: no query or fragment allowed", cfg.BaseURL)
	}
	if cfg.Token == "" {
		return nil, errors.New("verifier token is empty")
	}
	base := strings.TrimRight(u.String(), "/")
	rt := cfg.Transport
	if rt == nil {
		t := NewTransport()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		rt = t
	}
	c := &Client{
		verifyURL: base + "/v1/verify",
		eventsURL: base + "/v1/events",
		usageURL:  base + "/v1/usage",
		http: &http.Client{
			Transport: rt,
			// A redirect would send the verifier token and keys to
			// wherever it points; the key service never redirects.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetToken(cfg.Token)
	return c, nil
}

// SetToken makes later calls carry token (a rolled verifier token); calls
// already sent finish with the one they had. An empty token is ignored.
func (c *Client) SetToken(token string) {
	if token == "" {
		return
	}
	auth := "Bearer " + token
	c.auth.Store(&auth)
}

// CloseIdleConnections releases pooled connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

type verifyAnswer struct {
	Valid     *bool   `json:"valid"`
	Code      string  `json:"code"`
	KeyID     string  `json:"key_id"`
	KeyName   string  `json:"key_name"`
	AppID     string  `json:"app_id"`
	ExpiresAt *string `json:"expires_at"`
	RateLimit *struct {
		Requests int    `json:"requests"`
		Per      string `json:"per"`
	} `json:"rate_limit"`
	AllowedCIDRs []string `json:"allowed_cidrs"`
}

// maxAnswerNets bounds the networks a verify answer may carry; the key
// service allows far fewer.
const maxAnswerNets = 256

// Verify asks the key service about key. The key must already have passed
// apikey.Parse: it is placed in the JSON body without escaping, which is safe
// only for its base62 alphabet. Every verdict comes with HTTP 200; any other
// status is an error (*StatusError), as is an answer that does not decode
// into a consistent verdict.
func (c *Client) Verify(ctx context.Context, key string) (Result, error) {
	body := make([]byte, 0, len(key)+10)
	body = append(body, `{"key":"`...)
	body = append(body, key...)
	body = append(body, `"}`...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.verifyURL, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Authorization", *c.auth.Load())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	data, err := c.do(req)
	if err != nil {
		return Result{}, err
	}
	return decodeVerifyAnswer(data)
}

// decodeVerifyAnswer turns the body of a 200 answer to POST /v1/verify into
// a Result, or a *BadAnswerError when it is not a consistent verdict.
func decodeVerifyAnswer(data []byte) (Result, error) {
	var a verifyAnswer
	if err := decodeStrict(data, &a); err != nil {
		return Result{}, &BadAnswerError{Err: err}
	}
	r, err := a.result()
	if err != nil {
		return Result{}, &BadAnswerError{Err: err}
	}
	return r, nil
}

// result checks the answer's consistency: a verdict the sidecar does not
// understand must not be mistaken for either a yes or a no.
func (a *verifyAnswer) result() (Result, error) {
	if a.Valid == nil {
		return Result{}, errors.New("verify answer: missing \"valid\"")
	}
	code, ok := ParseCode(a.Code)
	if !ok {
		return Result{}, fmt.Errorf("verify answer: unknown code %q", a.Code)
	}
	if *a.Valid != (code == CodeValid) {
		return Result{}, fmt.Errorf("verify answer: valid=%t contradicts code %s", *a.Valid, code)
	}
	r := Result{Valid: *a.Valid, Code: code, KeyID: a.KeyID, KeyName: a.KeyName, AppID: a.AppID}
	if a.ExpiresAt != nil && *a.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339Nano, *a.ExpiresAt)
		if err != nil {
			return Result{}, fmt.Errorf("verify answer: expires_at: %w", err)
		}
		r.ExpiresAt = t
	}
	if r.Valid && (r.KeyID == "" || r.AppID == "") {
		return Result{}, errors.New("verify answer: a valid key without key_id or app_id")
	}
	if err := a.limits(&r); err != nil {
		return Result{}, err
	}
	return r, nil
}

// limits reads the answer's limits into r. Limits that cannot be read
// make the whole answer unusable: admitting the key without them would
// lift them.
func (a *verifyAnswer) limits(r *Result) error {
	if rl := a.RateLimit; rl != nil {
		per, ok := map[string]time.Duration{"1s": time.Second, "1m": time.Minute, "1h": time.Hour}[rl.Per]
		if !ok || rl.Requests < 1 {
			return fmt.Errorf("verify answer: rate_limit %d per %q is not a limit", rl.Requests, rl.Per)
		}
		r.Rate = Rate{Requests: rl.Requests, Per: per}
	}
	if len(a.AllowedCIDRs) > maxAnswerNets {
		return fmt.Errorf("verify answer: %d allowed_cidrs, more than %d", len(a.AllowedCIDRs), maxAnswerNets)
	}
	for _, c := range a.AllowedCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil || p.Masked() != p {
			return fmt.Errorf("verify answer: allowed_cidrs: %q is not a network", c)
		}
		r.AllowedNets = append(r.AllowedNets, p)
	}
	return nil
}

// Event is one entry of the app's change feed.
type Event struct {
	Seq   int64     `json:"seq"`
	Type  string    `json:"type"`
	KeyID string    `json:"key_id"`
	AppID string    `json:"app_id"`
	At    time.Time `json:"at"`
	// ExpiresAt is a key.expiry_changed event's new expiry.
	ExpiresAt *time.Time `json:"expires_at"`
}

// Event types the sidecar acts on.
const (
	EventKeyRevoked  = "key.revoked"
	EventKeyOrphaned = "key.orphaned"
	EventAppDeleted  = "app.deleted"
	// EventKeyExpiryChanged: the key now expires sooner (it was rolled).
	EventKeyExpiryChanged = "key.expiry_changed"
	// EventKeyUpdated: the key's limits changed.
	EventKeyUpdated = "key.updated"
)

// EventPage is one answer of GET /v1/events.
type EventPage struct {
	Events []Event
	// Next is the cursor for the following call.
	Next int64
}

type eventsAnswer struct {
	Events []Event `json:"events"`
	Next   *int64  `json:"next"`
}

// Events reads the change feed after cursor, long-polling up to wait when
// there is nothing new. With fromHead set, cursor is ignored and the key
// service answers at once with no events and the current head as Next.
// A cursor the service no longer keeps yields an error matching
// ErrCursorExpired.
func (c *Client) Events(ctx context.Context, cursor int64, fromHead bool, wait time.Duration) (EventPage, error) {
	u := c.eventsURL
	if !fromHead {
		u += "?after=" + strconv.FormatInt(cursor, 10)
		if wait > 0 {
			u += "&wait=" + wait.String()
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return EventPage{}, err
	}
	req.Header.Set("Authorization", *c.auth.Load())
	req.Header.Set("Accept", "application/json")
	data, err := c.do(req)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusGone {
			return EventPage{}, fmt.Errorf("%w: %w", ErrCursorExpired, err)
		}
		return EventPage{}, err
	}
	return decodeEventsAnswer(data)
}

// decodeEventsAnswer turns the body of a 200 answer to GET /v1/events into
// an EventPage, or a *BadAnswerError when the page cannot be trusted: the
// feed applies events in order and moves its cursor to Next, so a page
// with events out of order or without Next would lose revocations.
func decodeEventsAnswer(data []byte) (EventPage, error) {
	var a eventsAnswer
	if err := decodeStrict(data, &a); err != nil {
		return EventPage{}, &BadAnswerError{Err: err}
	}
	if a.Next == nil {
		return EventPage{}, &BadAnswerError{Err: errors.New("events answer: missing \"next\"")}
	}
	for i, ev := range a.Events {
		if ev.Seq <= 0 || ev.Type == "" {
			return EventPage{}, &BadAnswerError{Err: fmt.Errorf("events answer: event %d lacks seq or type", i)}
		}
		if i > 0 && ev.Seq <= a.Events[i-1].Seq {
			return EventPage{}, &BadAnswerError{Err: fmt.Errorf("events answer: seq %d out of order", ev.Seq)}
		}
	}
	return EventPage{Events: a.Events, Next: *a.Next}, nil
}

// do sends req and returns the body of a 200 answer. The body is read in
// full (bounded) so the connection goes back to the pool. Any other status
// is a *StatusError.
func (c *Client) do(req *http.Request) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(data) > maxBody {
		if resp.StatusCode == http.StatusOK {
			return nil, &BadAnswerError{Err: fmt.Errorf("answer larger than %d bytes", maxBody)}
		}
		return nil, &StatusError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
	}
	if resp.StatusCode != http.StatusOK {
		se := decodeErrorAnswer(resp.StatusCode, data)
		se.RetryAfter = retryAfter(resp.Header)
		return nil, se
	}
	return data, nil
}

// retryAfter reads a Retry-After of whole seconds, as the key service
// sends it, bounded to an hour; 0 when there is none.
func retryAfter(h http.Header) time.Duration {
	s, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(min(s, 3600)) * time.Second
}

// decodeErrorAnswer reads the key service's error body, when it is one, into
// a *StatusError. Its text ends up in logs, so it is bounded, and dropped
// when it quotes something that looks like a key.
func decodeErrorAnswer(status int, data []byte) *StatusError {
	se := &StatusError{Status: status}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		se.Code, se.Message = truncate(e.Error.Code, 64), truncate(e.Error.Message, 200)
		if strings.Contains(e.Error.Code+e.Error.Message, apikey.Prefix) {
			se.Code, se.Message = "", ""
		}
	}
	return se
}

// BadAnswerError is a key-service answer with HTTP 200 that cannot be used:
// not JSON, truncated, too large, of the wrong shape, or self-contradicting.
// It is neither a yes nor a no.
type BadAnswerError struct{ Err error }

func (e *BadAnswerError) Error() string { return e.Err.Error() }
func (e *BadAnswerError) Unwrap() error { return e.Err }

// decodeStrict decodes exactly one JSON value with the expected types.
// Unknown fields are tolerated on purpose: a key service rolled forward with
// one more field must not turn every sidecar's answers into 503s.
func decodeStrict(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decode answer: trailing data after the JSON value")
	}
	return nil
}

// truncate cuts s to at most n bytes, at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
