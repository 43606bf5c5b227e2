package keyservice

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"

	"github.com/appkeys/appkeys/internal/store"
)

// OIDCUser finds the user an identity provider vouched for by a verified
// email: the one live user with that email, in orgID when set. When there
// is none and autoCreate names a role (only member is allowed), the user
// is created in orgID. No user: KindNotFound; several (the email in
// several organizations, orgID unset): KindConflict.
func (s *Service) OIDCUser(ctx context.Context, email, orgID, autoCreate string) (User, bool, error) {
	email, err := checkEmail(email)
	if err != nil {
		return User{}, false, err
	}
	users, err := s.store.UsersByEmail(ctx, email)
	if err != nil {
		return User{}, false, s.storeErr(err)
	}
	var found []store.User
	for _, u := range users {
		if orgID == "" || u.OrgID == orgID {
			found = append(found, u)
		}
	}
	switch {
	case len(found) == 1:
		return *userOf(found[0]), false, nil
	case len(found) > 1:
		return User{}, false, errorf(KindConflict, "this email belongs to users of several organizations")
	case autoCreate != RoleMember || orgID == "":
		return User{}, false, errorf(KindNotFound, "no user has this email")
	}
	if _, err := s.store.GetOrg(ctx, orgID); err != nil {
		// --oidc-org names no organization: the operator's mistake, said
		// as such rather than as a failed insert.
		return User{}, false, s.notFound(err, "organization %s (--oidc-org) not found", truncate(orgID, 64))
	}
	// The token is made because every user has one, and never shown: the
	// user signs in with the provider and makes their own tokens.
	nu := s.withFirstToken(store.User{ID: newID("usr"), OrgID: orgID, Email: email, Role: RoleMember, CreatedAt: s.now().UTC()}, newToken(userTokenPrefix))
	if err := s.store.CreateUser(ctx, nu, "system"); err != nil {
		return User{}, false, s.conflict(err, "a user with email %q already exists", email)
	}
	return *userOf(nu), true, nil
}

// StartConsoleSessionAs logs user into the console without a token, for a
// sign-in an identity provider vouched for. Like StartConsoleSession, it
// ends the browser's old session and is audited (console.login).
func (s *Service) StartConsoleSessionAs(ctx context.Context, u User, oldCookie string) (string, ConsoleSession, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	cookie := base64.RawURLEncoding.EncodeToString(b)
	now := s.now().UTC()
	row := store.ConsoleSession{ID: sessionID(cookie), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(ConsoleSessionLifetime)}
	replaces := ""
	if validCookie(oldCookie) {
		replaces = sessionID(oldCookie)
	}
	if err := s.store.CreateConsoleSession(ctx, row, replaces); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", ConsoleSession{}, errorf(KindUnauthorized, "the user no longer exists")
		}
		return "", ConsoleSession{}, s.storeErr(err)
	}
	return cookie, s.consoleSession(cookie, row, u), nil
}
