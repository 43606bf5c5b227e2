package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// The console's cookies, by their base names; over https they carry the
// __Host- prefix (see cookies.go).
const (
	sessionCookie = "appkeys_session"
	// loginCookie carries the double-submit token of the login form: there
	// is no session yet to hold a CSRF token, and a forged login would sign
	// the victim into the attacker's organization.
	loginCookie = "appkeys_login"

	sessionLifetime = keyservice.ConsoleSessionLifetime
)

// session is a logged-in browser as one request sees it: the key service's
// session (its row id, its user as the caller, its CSRF token) and the
// cookie that named it. Only the random cookie travels to the browser, and
// the store keeps no token for it: the console acts as the session's user,
// whom the key service reads live at every request.
type session struct {
	keyservice.ConsoleSession
	cookie string
	// hasFlash tells that a notice waits, so pages without one write nothing.
	hasFlash bool
}

func newSession(cookie string, s keyservice.ConsoleSession) session {
	return session{ConsoleSession: s, cookie: cookie, hasFlash: s.Flash != ""}
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// setFlash leaves a notice for the next page this session sees. A notice
// is a courtesy: failing to leave one is logged, not shown.
func (c *console) setFlash(ctx context.Context, sess session, msg string) {
	if err := c.svc.SetConsoleFlash(ctx, sess.cookie, msg); err != nil {
		c.log.Warn("console: leave a notice", "err", err)
	}
}

// popFlash returns the waiting notice and forgets it.
func (c *console) popFlash(ctx context.Context, sess *session) string {
	if !sess.hasFlash {
		return ""
	}
	sess.hasFlash = false
	msg, err := c.svc.TakeConsoleFlash(ctx, sess.cookie)
	if err != nil {
		c.log.Warn("console: take the notice", "err", err)
		return ""
	}
	return msg
}

// sameToken compares two secrets in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
