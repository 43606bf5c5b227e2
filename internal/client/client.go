// Package client is a Go client for the appkeys key service's /v1 JSON API.
// The command line is built on it, and end-to-end tests of other packages use
// it to drive a real key service.
//
// Every call takes a context and answers either a typed result or an error;
// an error answer of the service is an *APIError, so callers tell a 404 from
// a 409 with errors.As or IsCode rather than by matching text.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults chosen for an interactive CLI and for tests: long enough for a
// busy service, short enough that a wrong URL does not hang a terminal.
const (
	DefaultTimeout = 30 * time.Second
	// DefaultMaxResponseBytes bounds a response body. Lists are not paged,
	// so this leaves room for an organization with many thousands of keys.
	DefaultMaxResponseBytes = 64 << 20
	// maxErrorBytes bounds an error body: an error never needs more, and a
	// misconfigured URL might point at something that streams forever.
	maxErrorBytes = 64 << 10
)

// Client calls one key service with one bearer token. It is safe for
// concurrent use.
type Client struct {
	base      *url.URL
	token     string
	http      *http.Client
	timeout   time.Duration
	maxBody   int64
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send through hc (for a custom transport).
// Its CheckRedirect is replaced: the Client never follows redirects, because
// a redirect would carry the bearer token to wherever it points.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		cp := *hc
		c.http = &cp
	}
}

// WithTimeout bounds each call. A long-polling Events call gets its wait on
// top of it. Zero or less means no bound beyond the caller's context.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxResponseBytes bounds the size of a response body the Client reads.
func WithMaxResponseBytes(n int64) Option { return func(c *Client) { c.maxBody = n } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a Client for the key service at baseURL (scheme and host, and
// optionally a path prefix when the service sits behind a proxy) that
// authenticates with token. token may be empty for the unauthenticated
// health endpoints.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		// Unwrapped: *url.Error would repeat the raw URL, userinfo and all.
		return nil, fmt.Errorf("invalid key service URL: %w", errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("invalid key service URL %q: the scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid key service URL %q: no host", u.Redacted())
	}
	if u.User != nil {
		// The token is the credential; userinfo in the URL would leak into
		// every error message that names the URL.
		return nil, fmt.Errorf("invalid key service URL %q: user information is not allowed, use the token", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid key service URL %q: no query or fragment allowed", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		base:      u,
		token:     token,
		http:      &http.Client{},
		timeout:   DefaultTimeout,
		maxBody:   DefaultMaxResponseBytes,
		userAgent: "appkeys-client",
	}
	for _, o := range opts {
		o(c)
	}
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// BaseURL returns the key service's URL the Client was made with.
func (c *Client) BaseURL() string { return c.base.String() }

// request describes one call.
type request struct {
	method string
	path   string // already escaped, starting with "/"
	query  url.Values
	body   any
	// accept overrides the Accept header (JSON by default).
	accept string
	// extra widens the timeout for a call that waits on purpose (long poll).
	extra time.Duration
}

// do sends r and decodes a 2xx answer's body into out (nil for none). Any
// other answer becomes an *APIError.
func (c *Client) do(ctx context.Context, r request, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout+r.extra)
		defer cancel()
	}
	target := c.base.String() + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return err
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	accept := "application/json"
	if r.accept != "" {
		accept = r.accept
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Said once, as "METHOD URL: cause", rather than *url.Error's quoted
		// form. Neither part carries the token (it travels in a header) nor a
		// key (keys travel in bodies).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", r.method, target, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		drain(resp.Body)
		return fmt.Errorf("%s %s: the server answered with a redirect (HTTP %d) to %q, which is not followed: check the key service URL",
			r.method, target, resp.StatusCode, resp.Header.Get("Location"))
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		return decodeError(resp)
	}
	if out == nil {
		drain(resp.Body)
		return nil
	}
	b, err := readLimited(resp.Body, c.maxBody)
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.method, target, err)
	}
	if raw, ok := out.(*rawText); ok {
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON: %w", r.method, target, err)
	}
	return nil
}

// rawText receives a body that is not JSON (the metrics text).
type rawText []byte

// errResponseTooLarge is returned when a body exceeds the Client's limit.
var errResponseTooLarge = errors.New("response body exceeds the size limit")

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w of %d bytes", errResponseTooLarge, limit)
	}
	return b, nil
}

// drain reads a little of what is left so the connection can be reused,
// without letting a large body hold the caller up.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, 4<<10)) }

func decodeError(resp *http.Response) error {
	e := &APIError{Status: resp.StatusCode}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	b, _ := readLimited(resp.Body, maxErrorBytes)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code = body.Error.Code
		e.Message = body.Error.Message
	}
	if e.Message == "" {
		// Not our API's error shape: say what the status means rather than
		// echo a body we know nothing about.
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		if e.Code == "" {
			e.Message = "unexpected answer from the key service: " + e.Message
		}
	}
	return e
}

// seg escapes one path segment, so an id or a secret name can never reach
// another endpoint ("../", "?", "#").
func seg(s string) string { return url.PathEscape(s) }

// checkID refuses an empty id before it turns e.g. DELETE /v1/apps/{id} into a
// call on the collection.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("empty %s", what)
	}
	return nil
}
