package client

import (
	"context"
	"net/http"
	"time"
)

// Like types.go, this repeats httpapi's JSON shapes on purpose: the client
// depends on the API alone.

// VerifierToken is one of an app's verifier tokens as listed: never the
// token, only its display prefix. ExpiresAt is nil for the app's current
// token and set for the previous one during a rotation's overlap.
type VerifierToken struct {
	ID         string     `json:"id"`
	AppID      string     `json:"app_id"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// MintedVerifierToken answers POST /v1/apps/{id}/verifier-tokens: the new
// token (Token, shown this once) and when the one it replaced stops.
type MintedVerifierToken struct {
	VerifierToken
	Token             string     `json:"token"`
	PreviousID        *string    `json:"previous_id"`
	PreviousExpiresAt *time.Time `json:"previous_expires_at"`
}

// UserToken is one of the caller's own API tokens as listed. Current marks
// the token making the call.
type UserToken struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Current   bool       `json:"current"`
}

// CreateUserTokenRequest is the body of POST /v1/me/tokens; a nil
// ExpiresAt makes a token that works until revoked.
type CreateUserTokenRequest struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreatedUserToken answers POST /v1/me/tokens; Token is shown this once.
type CreatedUserToken struct {
	UserToken
	Token string `json:"token"`
}

// MintVerifierToken rolls an app's verifier token: the answer carries the
// new one, shown this once; the one it replaces keeps working for overlap
// (0: it stops at once).
func (c *Client) MintVerifierToken(ctx context.Context, appID string, overlap time.Duration) (*MintedVerifierToken, error) {
	if err := checkID("app id", appID); err != nil {
		return nil, err
	}
	var out MintedVerifierToken
	body := map[string]string{"overlap": overlap.String()}
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/apps/" + seg(appID) + "/verifier-tokens", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListVerifierTokens lists an app's live verifier tokens, oldest first.
func (c *Client) ListVerifierTokens(ctx context.Context, appID string) ([]VerifierToken, error) {
	if err := checkID("app id", appID); err != nil {
		return nil, err
	}
	var out struct {
		VerifierTokens []VerifierToken `json:"verifier_tokens"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/apps/" + seg(appID) + "/verifier-tokens"}, &out); err != nil {
		return nil, err
	}
	return out.VerifierTokens, nil
}

// RetireVerifierToken stops an app's previous verifier token at once.
func (c *Client) RetireVerifierToken(ctx context.Context, appID, tokenID string) error {
	if err := checkID("app id", appID); err != nil {
		return err
	}
	if err := checkID("verifier token id", tokenID); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/apps/" + seg(appID) + "/verifier-tokens/" + seg(tokenID)}, nil)
}

// CreateMyToken mints an API token for the caller; the answer carries it,
// shown this once.
func (c *Client) CreateMyToken(ctx context.Context, in CreateUserTokenRequest) (*CreatedUserToken, error) {
	if in.ExpiresAt != nil {
		t := in.ExpiresAt.UTC()
		in.ExpiresAt = &t
	}
	var out CreatedUserToken
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/me/tokens", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListMyTokens lists the caller's live API tokens, oldest first.
func (c *Client) ListMyTokens(ctx context.Context) ([]UserToken, error) {
	var out struct {
		Tokens []UserToken `json:"tokens"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/me/tokens"}, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// RevokeMyToken revokes one of the caller's API tokens at once.
func (c *Client) RevokeMyToken(ctx context.Context, id string) error {
	if err := checkID("token id", id); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/me/tokens/" + seg(id)}, nil)
}
