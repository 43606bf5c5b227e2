package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sort"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

const (
	sessionCookie = "appkeys_session"
	// loginCookie carries the double-submit token of the login form: there
	// is no session yet to hold a CSRF token, and a forged login would sign
	// the victim into the attacker's organization.
	loginCookie = "appkeys_login"

	sessionLifetime = keyservice.ConsoleSessionLifetime
	// pendingLifetime bounds how long a freshly created key stays held
	// (sealed, in the session's row) for Save As Secret; it is shown once
	// and must not linger.
	pendingLifetime = 5 * time.Minute
	maxPending      = 8
)

// session is a logged-in browser as one request sees it. Only its random
// cookie travels to the browser; the user's token stays in the key
// service's store, sealed, so it is never exposed to scripts, and any
// replica can serve the session. Changes go through the key service, which
// applies them atomically however many replicas the browser's requests
// reach at once.
type session struct {
	cookie string
	token  string
	csrf   string
	// hasFlash tells that a notice waits, so pages without one write nothing.
	hasFlash bool
}

func newSession(cookie string, s keyservice.ConsoleSession) session {
	return session{cookie: cookie, token: s.Token, csrf: s.CSRF, hasFlash: s.Flash != ""}
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
	err := c.svc.UpdateConsoleSession(ctx, sess.cookie, func(s *keyservice.ConsoleSession) error {
		s.Flash = msg
		return nil
	})
	if err != nil {
		c.log.Warn("console: leave a notice", "err", err)
	}
}

// popFlash returns the waiting notice and forgets it.
func (c *console) popFlash(ctx context.Context, sess *session) string {
	if !sess.hasFlash {
		return ""
	}
	sess.hasFlash = false
	var msg string
	err := c.svc.UpdateConsoleSession(ctx, sess.cookie, func(s *keyservice.ConsoleSession) error {
		msg, s.Flash = s.Flash, ""
		return nil
	})
	if err != nil {
		c.log.Warn("console: take the notice", "err", err)
		return ""
	}
	return msg
}

// putPending holds a new key for the Save As Secret step and returns the
// flow id that names it. The oldest held keys make room past maxPending.
func (c *console) putPending(ctx context.Context, sess session, p keyservice.PendingKey) (string, error) {
	flow := randomToken()
	p.Expires = c.svc.Now().Add(pendingLifetime)
	err := c.svc.UpdateConsoleSession(ctx, sess.cookie, func(s *keyservice.ConsoleSession) error {
		flows := make([]string, 0, len(s.Pending))
		for f := range s.Pending {
			flows = append(flows, f)
		}
		sort.Slice(flows, func(i, j int) bool { return s.Pending[flows[i]].Expires.Before(s.Pending[flows[j]].Expires) })
		for len(flows) >= maxPending {
			delete(s.Pending, flows[0])
			flows = flows[1:]
		}
		s.Pending[flow] = p
		return nil
	})
	if err != nil {
		return "", err
	}
	return flow, nil
}

// takePending removes the flow's key and returns it, if still held. Of
// two requests taking one key, on any replicas, one gets it.
func (c *console) takePending(ctx context.Context, sess session, flow string) (keyservice.PendingKey, bool, error) {
	var p keyservice.PendingKey
	var ok bool
	err := c.svc.UpdateConsoleSession(ctx, sess.cookie, func(s *keyservice.ConsoleSession) error {
		p, ok = s.Pending[flow] // expired keys are not listed
		delete(s.Pending, flow)
		return nil
	})
	if err != nil {
		return keyservice.PendingKey{}, false, err
	}
	return p, ok, nil
}

// restorePending puts a key back after a failed save (say, a secret name
// already taken), so the user can try another name.
func (c *console) restorePending(ctx context.Context, sess session, flow string, p keyservice.PendingKey) {
	if !c.svc.Now().Before(p.Expires) {
		return
	}
	err := c.svc.UpdateConsoleSession(ctx, sess.cookie, func(s *keyservice.ConsoleSession) error {
		s.Pending[flow] = p
		return nil
	})
	if err != nil {
		c.log.Warn("console: hold the new key again", "err", err)
	}
}

// sameToken compares two secrets in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// setCookie writes a console cookie: HttpOnly, SameSite=Strict, Secure when
// the request came over TLS. maxAge < 0 deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}
