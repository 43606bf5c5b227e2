package keyservice

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
)

// Roles of a user inside an organization.
const (
	RoleOwner     = "owner"
	RoleAuraOwner = "aura_owner"
	RoleMember    = "member"
)

// Token prefixes tell the three kinds of bearer token apart.
const (
	adminTokenPrefix    = "aka_"
	userTokenPrefix     = "aku_"
	verifierTokenPrefix = "akv_"
	tokenRandomLen      = 43 // 256 bits of base62
	maxTokenLen         = 200
)

// credentialPrefixes start every key and bearer token the service mints.
var credentialPrefixes = [...]string{apikey.Prefix, adminTokenPrefix, userTokenPrefix, verifierTokenPrefix}

// HoldsCredential reports whether s contains the prefix of an API key or of
// a bearer token, so an adapter can keep what a user pasted in the wrong
// place (a key where an id goes) out of its logs.
func HoldsCredential(s string) bool {
	for _, p := range credentialPrefixes {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// Caller is who is calling: the platform admin, a user of an organization, or
// an app's sidecar (holding its verifier token). A deleted app's verifier
// token still authenticates verify and events, so its sidecar hears
// app.deleted and its keys answer ORPHANED rather than the token failing.
// TokenID and TokenExpires name the user or verifier token that called,
// and when it stops working (nil: never).
type Caller struct {
	Admin        bool
	User         *User
	App          *App
	TokenID      string
	TokenExpires *time.Time
}

// Authenticate resolves a bearer token. Unknown, expired and retired
// tokens are KindUnauthorized with one message for every reason.
func (s *Service) Authenticate(ctx context.Context, token string) (Caller, error) {
	unauthorized := errorf(KindUnauthorized, "missing or invalid token")
	if token == "" || len(token) > maxTokenLen {
		return Caller{}, unauthorized
	}
	h := s.keys.hashToken(token)
	now := s.now()
	var err error
	switch {
	case strings.HasPrefix(token, adminTokenPrefix):
		var ok bool
		ok, err = s.store.IsAdmin(ctx, h)
		if err == nil && ok {
			return Caller{Admin: true}, nil
		}
	case strings.HasPrefix(token, userTokenPrefix):
		var u store.User
		var t store.UserToken
		u, t, err = s.store.UserByToken(ctx, h)
		if err == nil && live(t.ExpiresAt, now) {
			return Caller{User: userOf(u), TokenID: t.ID, TokenExpires: t.ExpiresAt}, nil
		}
	case strings.HasPrefix(token, verifierTokenPrefix):
		e, ok := s.verifiers.get(h)
		if !ok {
			var a store.App
			var v store.VerifierToken
			a, v, err = s.store.AppByVerifier(ctx, h)
			if err != nil {
				break
			}
			e = verifierEntry{app: appOf(a), tokenID: v.ID, expires: v.ExpiresAt, lastUsed: v.LastUsedAt}
			s.verifiers.put(h, e)
		}
		if live(e.expires, now) {
			s.vusage.markID(e.tokenID, e.lastUsed, now)
			app := e.app
			return Caller{App: &app, TokenID: e.tokenID, TokenExpires: e.expires}, nil
		}
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Caller{}, s.storeErr(err)
	}
	return Caller{}, unauthorized
}

// live reports whether a token that expires at expires (nil: never) still
// works at now.
func live(expires *time.Time, now time.Time) bool { return expires == nil || now.Before(*expires) }

// user returns the caller's user, or a 403 for admin and verifier tokens.
func (c Caller) user() (*User, error) {
	if c.User == nil {
		return nil, errorf(KindForbidden, "this call needs a user token")
	}
	return c.User, nil
}

// manager returns the caller's user when they may manage the organization
// (add and remove users, read the audit log, revoke orphaned keys), or a
// 403 whose message ends with what they tried.
func (c Caller) manager(what string) (*User, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	if !CanRevokeOrphaned(u.Role) {
		return nil, errorf(KindForbidden, "only an Organization Owner or Aura Owner may %s", what)
	}
	return u, nil
}

// CanRevokeOrphaned reports whether a role may revoke orphaned keys; the
// same roles add and remove users and read the audit log.
func CanRevokeOrphaned(role string) bool { return role == RoleOwner || role == RoleAuraOwner }

// newToken mints a bearer token. crypto/rand never fails (Go 1.24), so
// neither does this.
func newToken(prefix string) string { return prefix + apikey.Random(tokenRandomLen) }

func newID(prefix string) string { return prefix + "_" + apikey.Random(20) }
