package keyservice

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Console sessions are the web console's logged-in browsers. They live in
// the store, so any replica serves any of them and a restart ends none.
// Only the random cookie travels to the browser; the row is keyed by its
// SHA-256 and holds nothing secret: the user's id, the expiry and the
// one-time notice. A session acts as its user, read live at every lookup,
// so no token is kept anywhere: a copy of the database, even with the
// master key beside it, yields no way in. Keys just created are not kept
// either: the page that shows one carries it, sealed, for Save As Secret
// (see SealNewKey). The CSRF token is derived from the cookie, so it is not
// stored at all.

// ConsoleSessionLifetime is how long a console login lasts.
const ConsoleSessionLifetime = 8 * time.Hour

// maxCookieLen bounds what is hashed and looked up: a cookie is 43 characters.
const maxCookieLen = 128

// ConsoleSession is a logged-in browser of the web console.
type ConsoleSession struct {
	// ID is the session's row id (the SHA-256 of its cookie), to which a
	// new key's sealed form field is bound.
	ID string
	// Caller is the session's user, read at this lookup: the console acts
	// as them, with their current role. A deleted user has no session.
	Caller Caller
	// CSRF is the token every form of the session carries.
	CSRF    string
	Expires time.Time
	// Flash is a one-time notice for the next page ("Revoked …").
	Flash string
}

func errNoSession(err error) error {
	return &Error{Kind: KindUnauthorized, Message: "the console session has expired or ended; log in again", Err: err}
}

// sessionID is the row id of the session whose cookie is cookie.
func sessionID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

func validCookie(cookie string) bool { return cookie != "" && len(cookie) <= maxCookieLen }

// StartConsoleSession logs a user token into the console and returns the
// new session's cookie value. The token is checked here and never kept.
// The login is audited with the session's start. A token that fails is
// not: it names no user, so no organization whose audit log could hold
// it.
// oldCookie, when set, is the session cookie the browser already had: that
// session ends in the same transaction, so a login never leaves the
// browser's previous session alive. A token that does not authenticate is
// KindUnauthorized, a token that is not a user's KindForbidden.
func (s *Service) StartConsoleSession(ctx context.Context, token, oldCookie string) (string, ConsoleSession, error) {
	c, err := s.Authenticate(ctx, token)
	if err != nil {
		return "", ConsoleSession{}, err
	}
	u, err := c.user()
	if err != nil {
		return "", ConsoleSession{}, err
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	cookie := base64.RawURLEncoding.EncodeToString(b)
	now := s.now().UTC()
	// A session never outlives the token it was started with: it ends at
	// the token's expiry, and when the token is revoked (by its TokenID).
	expires := now.Add(ConsoleSessionLifetime)
	if c.TokenExpires != nil && c.TokenExpires.Before(expires) {
		expires = c.TokenExpires.UTC()
	}
	row := store.ConsoleSession{ID: sessionID(cookie), UserID: u.ID, TokenID: c.TokenID, CreatedAt: now, ExpiresAt: expires}
	replaces := ""
	if validCookie(oldCookie) {
		replaces = sessionID(oldCookie)
	}
	if err := s.store.CreateConsoleSession(ctx, row, replaces); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// The user was deleted between the token check and now.
			return "", ConsoleSession{}, errorf(KindUnauthorized, "missing or invalid token")
		}
		return "", ConsoleSession{}, s.storeErr(err)
	}
	return cookie, s.consoleSession(cookie, row, *u), nil
}

// ConsoleSession returns the live session whose cookie is cookie, with its
// user as the caller. KindUnauthorized means the session is gone (unknown,
// ended, expired, or its user deleted) and nothing else does: a store that
// cannot answer is KindUnavailable or an unexpected error, which say
// nothing about the session.
func (s *Service) ConsoleSession(ctx context.Context, cookie string) (ConsoleSession, error) {
	if !validCookie(cookie) {
		return ConsoleSession{}, errNoSession(nil)
	}
	row, u, err := s.store.ConsoleSession(ctx, sessionID(cookie), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return ConsoleSession{}, errNoSession(err)
	}
	if err != nil {
		return ConsoleSession{}, s.storeErr(err)
	}
	return s.consoleSession(cookie, row, *userOf(u)), nil
}

// SetConsoleFlash leaves a one-time notice for the session's next page.
// An unknown, ended or expired session is KindUnauthorized.
func (s *Service) SetConsoleFlash(ctx context.Context, cookie, msg string) error {
	if !validCookie(cookie) {
		return errNoSession(nil)
	}
	return s.sessionErr(s.store.SetConsoleSessionFlash(ctx, sessionID(cookie), s.now(), msg))
}

// TakeConsoleFlash returns the session's waiting notice and clears it: of
// two requests of one session, on any replicas, one gets it. An unknown,
// ended or expired session is KindUnauthorized.
func (s *Service) TakeConsoleFlash(ctx context.Context, cookie string) (string, error) {
	if !validCookie(cookie) {
		return "", errNoSession(nil)
	}
	msg, err := s.store.TakeConsoleSessionFlash(ctx, sessionID(cookie), s.now())
	return msg, s.sessionErr(err)
}

func (s *Service) sessionErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNoSession(err)
	}
	return s.storeErr(err)
}

// EndConsoleSession ends a session (logout): its cookie stops working on
// every replica at once, and the logout is audited. Ending a session
// already gone is not an error (nor audited again).
func (s *Service) EndConsoleSession(ctx context.Context, cookie string) error {
	if !validCookie(cookie) {
		return nil
	}
	err := s.store.DeleteConsoleSession(ctx, sessionID(cookie), s.now().UTC())
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return s.storeErr(err)
}

// sweepConsoleSessions deletes expired sessions, a bounded batch at a time.
func (s *Service) sweepConsoleSessions(ctx context.Context) {
	total := int64(0)
	for range 100 {
		n, err := s.store.SweepConsoleSessions(ctx, s.now(), store.SessionSweepLimit)
		total += n
		if err != nil {
			s.log.Warn("sweep console sessions", "err", err)
			break
		}
		if n < store.SessionSweepLimit {
			break
		}
	}
	if total > 0 {
		s.log.Info("swept expired console sessions", "count", total)
	}
}

// consoleSession is the session as callers see it.
func (s *Service) consoleSession(cookie string, row store.ConsoleSession, u User) ConsoleSession {
	return ConsoleSession{
		ID: row.ID, Caller: Caller{User: &u}, CSRF: s.keys.sessionCSRFToken(cookie), Expires: row.ExpiresAt, Flash: row.Flash,
	}
}
