package keyservice

import (
	"context"
	"errors"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// MaxVerifierOverlap bounds how long an app's previous verifier token keeps
// working after a new one is minted: long enough to roll every sidecar of
// an app, short enough that a forgotten old token dies on its own.
const MaxVerifierOverlap = 7 * 24 * time.Hour

// tokenPrefixLen is how much of a token is kept for display: its kind
// ("akv_", "aku_") and 6 random characters, as with keys.
const tokenPrefixLen = 10

// VerifierToken is one of an app's verifier tokens as its owners see it:
// never the token, nor its hash. An app has one current token (ExpiresAt
// nil) and, during a rotation's overlap, the previous one (ExpiresAt set).
type VerifierToken struct {
	ID         string
	AppID      string
	Prefix     string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
}

func (s *Service) verifierTokenOf(v store.VerifierToken) VerifierToken {
	return VerifierToken{ID: v.ID, AppID: v.AppID, Prefix: v.Prefix, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy,
		ExpiresAt: v.ExpiresAt, LastUsedAt: s.vusage.latest(v.ID, v.LastUsedAt)}
}

// VerifierTokenMinted is the answer to MintVerifierToken: the new token,
// shown once, and the token it replaced with the time it stops working
// (Previous is nil when there was none).
type VerifierTokenMinted struct {
	Token    VerifierToken
	Plain    string
	Previous *VerifierToken
}

// MintVerifierToken makes a new current verifier token for an app of the
// caller's organization. The previous current token keeps working for
// overlap (0: it stops at once), at most MaxVerifierOverlap. While an
// earlier rotation's previous token still counts down, minting is refused
// (KindConflict): a third token would let the second outlive its promised
// overlap, so the caller must retire it, or wait, first.
func (s *Service) MintVerifierToken(ctx context.Context, c Caller, appID string, overlap time.Duration) (VerifierTokenMinted, error) {
	u, err := c.user()
	if err != nil {
		return VerifierTokenMinted{}, err
	}
	if overlap < 0 || overlap > MaxVerifierOverlap {
		return VerifierTokenMinted{}, errorf(KindInvalid, "overlap must be from 0s to 168h (7 days)")
	}
	plain := newToken(verifierTokenPrefix)
	now := s.now().UTC().Truncate(time.Microsecond) // as the store keeps it, so the answer matches later lists
	v := store.VerifierToken{ID: newID("vtk"), AppID: appID, OrgID: u.OrgID, Hash: s.keys.hashToken(plain), Prefix: plain[:tokenPrefixLen],
		CreatedAt: now, CreatedBy: u.ID}
	prev, err := s.store.MintVerifierToken(ctx, v, now.Add(overlap))
	switch {
	case errors.Is(err, store.ErrPreviousTokenLive):
		return VerifierTokenMinted{}, &Error{Kind: KindConflict, Err: err,
			Message: "app " + appID + " already has two live verifier tokens: retire the previous one (DELETE /v1/apps/" + appID + "/verifier-tokens/{id}) or wait for its overlap to end"}
	case err != nil:
		return VerifierTokenMinted{}, s.notFound(err, "app %s not found", appID)
	}
	// The replaced token's new expiry, or its removal, holds on this
	// replica at once; others see it within verifierTTL.
	s.verifiers.forgetApp(appID)
	out := VerifierTokenMinted{Token: s.verifierTokenOf(v), Plain: plain}
	if prev.ID != "" {
		p := s.verifierTokenOf(prev)
		out.Previous = &p
	}
	return out, nil
}

// ListVerifierTokens lists the live verifier tokens of an app of the
// caller's organization, oldest first, with when each was last used.
func (s *Service) ListVerifierTokens(ctx context.Context, c Caller, appID string) ([]VerifierToken, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	tokens, err := s.store.ListVerifierTokens(ctx, u.OrgID, appID, s.now())
	if err != nil {
		return nil, s.notFound(err, "app %s not found", appID)
	}
	return each(tokens, s.verifierTokenOf), nil
}

// RetireVerifierToken stops an app's previous verifier token at once. The
// current token cannot be retired (KindConflict): an app without one could
// verify nothing; mint a new one with overlap 0 to replace it at once.
func (s *Service) RetireVerifierToken(ctx context.Context, c Caller, appID, tokenID string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	_, err = s.store.RetireVerifierToken(ctx, u.OrgID, appID, tokenID, u.ID, s.now().UTC())
	switch {
	case errors.Is(err, store.ErrCurrentToken):
		return &Error{Kind: KindConflict, Err: err,
			Message: "verifier token " + tokenID + " is the app's current token and cannot be retired; mint a new one with overlap 0 to replace it at once"}
	case err != nil:
		return s.notFound(err, "verifier token %s not found", tokenID)
	}
	s.verifiers.forgetApp(appID)
	return nil
}
