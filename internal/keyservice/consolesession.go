package keyservice

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Console sessions are the web console's logged-in browsers. They live in
// the store, so any replica serves any of them and a restart ends none.
// Only the random cookie travels to the browser; the row is keyed by its
// SHA-256 and holds the user's token, the one-time notice and the keys held
// for Save As Secret only sealed (AES-256-GCM under a key derived from the
// master key, with the row id as additional data). The CSRF token is
// derived from the cookie, so it is not stored at all.

// ConsoleSessionLifetime is how long a console login lasts.
const ConsoleSessionLifetime = 8 * time.Hour

// maxCookieLen bounds what is hashed and looked up: a cookie is 43 characters.
const maxCookieLen = 128

// ConsoleSession is a logged-in browser of the web console.
type ConsoleSession struct {
	// Token is the user's token: the console authenticates it again on
	// every request, so a deleted user's session dies at once.
	Token  string
	UserID string
	// CSRF is the token every form of the session carries.
	CSRF    string
	Expires time.Time
	// Flash is a one-time notice for the next page ("Revoked …").
	Flash string
	// Pending holds keys just created, by flow id, until Close, Save As
	// Secret or their Expires: the only way to save a key shown once. Keys
	// past their Expires are never shown here, and are dropped from the
	// row at the session's next request.
	Pending map[string]PendingKey
}

// PendingKey is a key just created in the console, held for Save As Secret.
type PendingKey struct {
	Plain   string    `json:"k"`
	AppID   string    `json:"a"`
	KeyName string    `json:"n"`
	Expires time.Time `json:"e"`
}

// sessionState is what a session's sealed blob holds.
type sessionState struct {
	Token   string                `json:"t"`
	Flash   string                `json:"f,omitempty"`
	Pending map[string]PendingKey `json:"p,omitempty"`
}

func errNoSession(err error) error {
	return &Error{Kind: KindUnauthorized, Message: "the console session has expired or ended; log in again", Err: err}
}

// sessionID is the row id of the session whose cookie is cookie.
func sessionID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

// StartConsoleSession logs a user token into the console and returns the
// new session's cookie value. A token that does not authenticate is
// KindUnauthorized, a token that is not a user's KindForbidden.
func (s *Service) StartConsoleSession(ctx context.Context, token string) (string, ConsoleSession, error) {
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
	id := sessionID(cookie)
	plain, err := json.Marshal(sessionState{Token: token})
	if err != nil {
		return "", ConsoleSession{}, err
	}
	sealed, err := s.keys.sealSession(id, plain)
	if err != nil {
		return "", ConsoleSession{}, err
	}
	now := s.now().UTC()
	row := store.ConsoleSession{ID: id, UserID: u.ID, Sealed: sealed, CreatedAt: now, ExpiresAt: now.Add(ConsoleSessionLifetime)}
	if err := s.store.CreateConsoleSession(ctx, row); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// The user was deleted between the token check and now.
			return "", ConsoleSession{}, errorf(KindUnauthorized, "missing or invalid token")
		}
		return "", ConsoleSession{}, s.storeErr(err)
	}
	return cookie, s.consoleSession(cookie, row, sessionState{Token: token}), nil
}

// ConsoleSession returns the live session whose cookie is cookie. An
// unknown, ended or expired session is KindUnauthorized.
func (s *Service) ConsoleSession(ctx context.Context, cookie string) (ConsoleSession, error) {
	if cookie == "" || len(cookie) > maxCookieLen {
		return ConsoleSession{}, errNoSession(nil)
	}
	row, err := s.store.ConsoleSession(ctx, sessionID(cookie), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return ConsoleSession{}, errNoSession(err)
	}
	if err != nil {
		return ConsoleSession{}, s.storeErr(err)
	}
	st, err := s.openSession(row)
	if err != nil {
		return ConsoleSession{}, errNoSession(err)
	}
	sess := s.consoleSession(cookie, row, st)
	if len(sess.Pending) < len(st.Pending) {
		// A key held past its time leaves the row now, not at the
		// session's end: a no-op update drops it.
		if err := s.UpdateConsoleSession(ctx, cookie, func(*ConsoleSession) error { return nil }); err != nil && KindOf(err) != KindUnauthorized {
			s.log.Warn("console session: drop expired pending keys", "err", err)
		}
	}
	return sess, nil
}

// UpdateConsoleSession changes a session's Flash and Pending through fn,
// atomically: the read, fn and the write run in one store transaction with
// the session's row locked, so concurrent requests of one session, on any
// replica, apply one after the other and each sees the last one's result
// (a pending key taken by one is gone for the other). Changes fn makes to
// other fields are ignored. An error from fn discards fn's changes and is
// returned as is. fn must not call the service: it runs inside the store's
// write transaction. An unknown, ended or expired session is
// KindUnauthorized.
func (s *Service) UpdateConsoleSession(ctx context.Context, cookie string, fn func(*ConsoleSession) error) error {
	if cookie == "" || len(cookie) > maxCookieLen {
		return errNoSession(nil)
	}
	id := sessionID(cookie)
	var fnErr error
	err := s.store.UpdateConsoleSession(ctx, id, s.now(), func(row store.ConsoleSession) ([]byte, error) {
		st, err := s.openSession(row)
		if err != nil {
			return nil, errNoSession(err)
		}
		before, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		sess := s.consoleSession(cookie, row, st)
		if fnErr = fn(&sess); fnErr != nil {
			return nil, fnErr
		}
		after, err := json.Marshal(sessionState{Token: st.Token, Flash: sess.Flash, Pending: sess.Pending})
		if err != nil {
			return nil, err
		}
		if bytes.Equal(before, after) {
			return nil, nil // nothing to write
		}
		return s.keys.sealSession(id, after)
	})
	switch {
	case err == nil:
		return nil
	case fnErr != nil && errors.Is(err, fnErr):
		return fnErr
	case errors.Is(err, store.ErrNotFound):
		return errNoSession(err)
	case KindOf(err) != 0:
		return err
	}
	return s.storeErr(err)
}

// EndConsoleSession ends a session (logout): its cookie stops working on
// every replica at once. Ending a session already gone is not an error.
func (s *Service) EndConsoleSession(ctx context.Context, cookie string) error {
	if cookie == "" || len(cookie) > maxCookieLen {
		return nil
	}
	err := s.store.DeleteConsoleSession(ctx, sessionID(cookie))
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

// openSession decrypts a session row. A row that does not open (the master
// key was changed) is as good as no session.
func (s *Service) openSession(row store.ConsoleSession) (sessionState, error) {
	plain, err := s.keys.openSession(row.ID, row.Sealed)
	if err != nil {
		return sessionState{}, err
	}
	var st sessionState
	if err := json.Unmarshal(plain, &st); err != nil {
		return sessionState{}, err
	}
	return st, nil
}

// consoleSession is the session as callers see it: pending keys past their
// time are left out.
func (s *Service) consoleSession(cookie string, row store.ConsoleSession, st sessionState) ConsoleSession {
	sess := ConsoleSession{
		Token: st.Token, UserID: row.UserID, CSRF: s.keys.sessionCSRFToken(cookie), Expires: row.ExpiresAt,
		Flash: st.Flash, Pending: map[string]PendingKey{},
	}
	now := s.now()
	for flow, p := range st.Pending {
		if now.Before(p.Expires) {
			sess.Pending[flow] = p
		}
	}
	return sess
}
