package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// CreateOrg creates an organization and its owner. It needs the platform
// admin token.
func (c *Client) CreateOrg(ctx context.Context, in CreateOrgRequest) (*CreatedOrg, error) {
	var out CreatedOrg
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/orgs", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Me says whom the token belongs to.
func (c *Client) Me(ctx context.Context) (*Me, error) {
	var out Me
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/me"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateUser adds a user to the caller's organization. The answer carries the
// user's token, which is not shown again.
func (c *Client) CreateUser(ctx context.Context, in CreateUserRequest) (*CreatedUser, error) {
	var out CreatedUser
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/users", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListUsers lists the caller's organization's users.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var out struct {
		Users []User `json:"users"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/users"}, &out); err != nil {
		return nil, err
	}
	return out.Users, nil
}

// DeleteUser removes a user; the keys they created become orphaned.
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	if err := checkID("user id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/users/" + seg(id)}, nil)
}

// CreateApp creates an app. The answer carries its verifier token, which is
// not shown again.
func (c *Client) CreateApp(ctx context.Context, in CreateAppRequest) (*CreatedApp, error) {
	var out CreatedApp
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/apps", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListApps lists the organization's apps with their key counts.
func (c *Client) ListApps(ctx context.Context) ([]App, error) {
	var out struct {
		Apps []App `json:"apps"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/apps"}, &out); err != nil {
		return nil, err
	}
	return out.Apps, nil
}

// GetApp returns one app.
func (c *Client) GetApp(ctx context.Context, id string) (*App, error) {
	if err := checkID("app id", id); err != nil {
		return nil, err
	}
	var out App
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/apps/" + seg(id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteApp deletes an app; its keys become orphaned.
func (c *Client) DeleteApp(ctx context.Context, id string) error {
	if err := checkID("app id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/apps/" + seg(id)}, nil)
}

// CreateKey creates a key for an app. Unless in.SaveAsSecret is set, the
// answer's PlainKey is the key, shown this once.
func (c *Client) CreateKey(ctx context.Context, appID string, in CreateKeyRequest) (*CreatedKey, error) {
	if err := checkID("app id", appID); err != nil {
		return nil, err
	}
	in.ExpiresAt = in.ExpiresAt.UTC()
	var out CreatedKey
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/apps/" + seg(appID) + "/keys", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAppKeys lists one app's keys in the given state (StateAny for every
// key that is not revoked).
func (c *Client) ListAppKeys(ctx context.Context, appID string, state KeyState) ([]Key, error) {
	if appID == "" {
		return nil, checkID("app id", appID)
	}
	return c.ListKeysWhere(ctx, KeyQuery{AppID: appID, State: state})
}

// ListKeys lists every key of the organization in the given state (StateAny
// for every key that is not revoked).
func (c *Client) ListKeys(ctx context.Context, state KeyState) ([]Key, error) {
	return c.ListKeysWhere(ctx, KeyQuery{State: state})
}

// ListExpiringKeys lists the active keys that expire within d from now, of
// one app when appID is set, else of the whole organization. The service
// takes d up to its longest key lifetime (365 days by default).
func (c *Client) ListExpiringKeys(ctx context.Context, appID string, d time.Duration) ([]Key, error) {
	return c.ListKeysWhere(ctx, KeyQuery{AppID: appID, ExpiringWithin: d})
}

// ListKeysWhere lists the organization's keys that q selects: with
// Leaked, for instance, the keys GitHub reported leaked.
func (c *Client) ListKeysWhere(ctx context.Context, kq KeyQuery) ([]Key, error) {
	path := "/v1/keys"
	if kq.AppID != "" {
		if err := checkID("app id", kq.AppID); err != nil {
			return nil, err
		}
		path = "/v1/apps/" + seg(kq.AppID) + "/keys"
	}
	q := url.Values{}
	if kq.State != StateAny {
		q.Set("state", string(kq.State))
	}
	if kq.Leaked != nil {
		q.Set("leaked", strconv.FormatBool(*kq.Leaked))
	}
	if kq.ExpiringWithin != 0 {
		q.Set("expiring_within", WithinParam(kq.ExpiringWithin))
	}
	var out struct {
		Keys []Key `json:"keys"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: path, query: q}, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// WithinParam writes d as expiring_within takes it: whole days as "7d",
// anything else as a Go duration ("36h0m0s").
func WithinParam(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// LookupKey tells which of the organization's keys key is, whatever its
// state (revoked included), for an Organization Owner or Aura Owner
// answering an incident: a key of another organization is not found, as a
// key that does not exist. The key travels in the request's body.
func (c *Client) LookupKey(ctx context.Context, key string) (*Key, error) {
	var out Key
	body := struct {
		Key string `json:"key"`
	}{key}
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/keys/lookup", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeKey revokes a key for good.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	if err := checkID("key id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/keys/" + seg(id)}, nil)
}

// UpdateKey changes a key's limits and answers the key as it now is.
func (c *Client) UpdateKey(ctx context.Context, id string, in UpdateKeyRequest) (*Key, error) {
	if err := checkID("key id", id); err != nil {
		return nil, err
	}
	var out Key
	if err := c.do(ctx, request{method: http.MethodPatch, path: "/v1/keys/" + seg(id), body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RollKey replaces a key with a new one for the same app and name. The old
// key keeps working for in.Overlap (never past its own expiry).
func (c *Client) RollKey(ctx context.Context, id string, in RollKeyRequest) (*RolledKey, error) {
	if err := checkID("key id", id); err != nil {
		return nil, err
	}
	in.ExpiresAt = in.ExpiresAt.UTC()
	var out RolledKey
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/keys/" + seg(id) + "/roll", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateSecret stores a secret.
func (c *Client) CreateSecret(ctx context.Context, in CreateSecretRequest) (*Secret, error) {
	var out Secret
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/secrets", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSecrets lists the organization's secrets, names only.
func (c *Client) ListSecrets(ctx context.Context) ([]Secret, error) {
	var out struct {
		Secrets []Secret `json:"secrets"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/secrets"}, &out); err != nil {
		return nil, err
	}
	return out.Secrets, nil
}

// GetSecret reads a secret's value. The service records the access.
func (c *Client) GetSecret(ctx context.Context, name string) (*SecretValue, error) {
	if err := checkID("secret name", name); err != nil {
		return nil, err
	}
	var out SecretValue
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/secrets/" + seg(name)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSecret deletes a secret.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	if err := checkID("secret name", name); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/secrets/" + seg(name)}, nil)
}

// ListAudit returns the organization's newest audit records, newest first
// (owners and aura owners). limit is 1 to 1000; zero asks for the service's
// default.
func (c *Client) ListAudit(ctx context.Context, limit int) ([]AuditRecord, error) {
	var q url.Values
	if limit != 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var out struct {
		Audit []AuditRecord `json:"audit"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/audit", query: q}, &out); err != nil {
		return nil, err
	}
	return out.Audit, nil
}

// Verify asks whether key may enter the app whose verifier token the Client
// carries. Every verdict, VALID or not, is a result, not an error.
func (c *Client) Verify(ctx context.Context, key string) (*VerifyResult, error) {
	var out VerifyResult
	body := struct {
		Key string `json:"key"`
	}{key}
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/verify", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EventsHead returns the current end of the app's events feed: the cursor
// from which a new follower starts.
func (c *Client) EventsHead(ctx context.Context) (int64, error) {
	var out EventPage
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/events"}, &out); err != nil {
		return 0, err
	}
	return out.Next, nil
}

// Events returns the events after the cursor after, waiting up to wait for
// one to arrive (zero: answer at once). A cursor older than the feed keeps
// yields an *APIError with code CodeCursorExpired (HTTP 410).
func (c *Client) Events(ctx context.Context, after int64, wait time.Duration) (*EventPage, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out EventPage
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/events", query: q, extra: wait}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Healthz checks that the service is alive.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/healthz"}, nil)
}

// Readyz checks that the service can reach its store.
func (c *Client) Readyz(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/readyz"}, nil)
}

// Metrics returns the service's Prometheus exposition text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var out rawText
	if err := c.do(ctx, request{method: http.MethodGet, path: "/metrics", accept: "text/plain"}, &out); err != nil {
		return "", err
	}
	return string(out), nil
}
