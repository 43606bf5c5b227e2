package keyservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// UserToken is one of the caller's own API tokens as they see it: never
// the token, nor its hash. Current marks the token making the call.
type UserToken struct {
	ID        string
	Name      string
	Prefix    string
	CreatedAt time.Time
	ExpiresAt *time.Time
	Current   bool
}

func userTokenOf(t store.UserToken, c Caller) UserToken {
	return UserToken{ID: t.ID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Current: t.ID == c.TokenID}
}

// newUserToken mints a user token and its record for user u, named name.
func (s *Service) newUserToken(u store.User, name string, expires *time.Time) (string, store.UserToken) {
	plain := newToken(userTokenPrefix)
	return plain, store.UserToken{ID: newID("utk"), UserID: u.ID, OrgID: u.OrgID, Name: name, Hash: s.keys.hashToken(plain),
		Prefix: plain[:tokenPrefixLen], CreatedAt: s.now().UTC().Truncate(time.Microsecond), ExpiresAt: expires}
}

// withFirstToken sets u's first token (stored as "initial" with the user).
func (s *Service) withFirstToken(u store.User, token string) store.User {
	u.TokenHash, u.TokenPrefix = s.keys.hashToken(token), token[:min(tokenPrefixLen, len(token))]
	return u
}

// CreateMyToken mints a new API token for the caller, named name, that
// stops working at expires (nil: never). The token is in the answer once.
func (s *Service) CreateMyToken(ctx context.Context, c Caller, name string, expires *time.Time) (UserToken, string, error) {
	u, err := c.user()
	if err != nil {
		return UserToken{}, "", err
	}
	if name, err = checkName("name", name); err != nil {
		return UserToken{}, "", err
	}
	if expires != nil {
		e := expires.UTC().Truncate(time.Microsecond)
		if !e.After(s.now()) {
			return UserToken{}, "", errorf(KindInvalid, "expires_at must be in the future")
		}
		expires = &e
	}
	plain, t := s.newUserToken(store.User{ID: u.ID, OrgID: u.OrgID}, name, expires)
	err = s.store.CreateUserToken(ctx, t)
	if errors.Is(err, store.ErrTooManyTokens) {
		return UserToken{}, "", &Error{Kind: KindConflict, Err: err,
			Message: fmt.Sprintf("you already hold %d live tokens; revoke one first", store.MaxUserTokens)}
	}
	if err != nil {
		return UserToken{}, "", s.storeErr(err)
	}
	return userTokenOf(t, c), plain, nil
}

// ListMyTokens lists the caller's live tokens, oldest first.
func (s *Service) ListMyTokens(ctx context.Context, c Caller) ([]UserToken, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	tokens, err := s.store.ListUserTokens(ctx, u.ID, s.now())
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(tokens, func(t store.UserToken) UserToken { return userTokenOf(t, c) }), nil
}

// RevokeMyToken revokes one of the caller's tokens at once, the one making
// the call included, and ends the console sessions started with it. Their
// only live token cannot be revoked (KindConflict): they would be locked
// out of the API. Another user's token is KindNotFound.
func (s *Service) RevokeMyToken(ctx context.Context, c Caller, id string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	err = s.store.DeleteUserToken(ctx, u.ID, id, s.now().UTC())
	if errors.Is(err, store.ErrLastToken) {
		return &Error{Kind: KindConflict, Err: err, Message: "token " + id + " is your only live token; create another before you revoke it"}
	}
	return s.notFound(err, "token %s not found", id)
}
