package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

const (
	sessionCookie = "appkeys_session"
	// loginCookie carries the double-submit token of the login form: there
	// is no session yet to hold a CSRF token, and a forged login would sign
	// the victim into the attacker's organization.
	loginCookie = "appkeys_login"

	sessionLifetime = 8 * time.Hour
	// pendingLifetime bounds how long a freshly created key stays in memory
	// for Save As Secret; it is shown once and must not linger.
	pendingLifetime = 5 * time.Minute
	maxPending      = 8
	sweepEvery      = time.Minute
)

// session is a logged-in browser. Only its random id travels in the
// cookie; the user's token stays here, in memory, so a stolen cookie dies
// with the process or the expiry and the token is never exposed to scripts.
type session struct {
	id      string
	token   string
	csrf    string
	expires time.Time
	// pending holds keys just created, by flow id, until Close, Create
	// Secret or pendingLifetime: the only way to save a key shown once.
	pending map[string]pendingKey
	// flash is a one-time notice for the next page ("Revoked …").
	flash string
}

type pendingKey struct {
	plain   string
	appID   string
	keyName string
	expires time.Time
}

// sessions is the in-memory session store.
type sessions struct {
	now       func() time.Time
	mu        sync.Mutex
	byID      map[string]*session
	lastSweep time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, byID: map[string]*session{}}
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for a token that has just authenticated.
func (s *sessions) create(token string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	sess := &session{id: randomToken(), token: token, csrf: randomToken(), expires: s.now().Add(sessionLifetime), pending: map[string]pendingKey{}}
	s.byID[sess.id] = sess
	return sess
}

// get returns a copy of the live session with this id. A copy, so that
// handlers read it without holding the lock.
func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(sess.expires) {
		delete(s.byID, id)
		return session{}, false
	}
	return session{id: sess.id, token: sess.token, csrf: sess.csrf, expires: sess.expires}, true
}

// setFlash leaves a notice for the next page this session sees.
func (s *sessions) setFlash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.byID[id]; ok {
		sess.flash = msg
	}
}

// popFlash returns the pending notice and forgets it.
func (s *sessions) popFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return ""
	}
	msg := sess.flash
	sess.flash = ""
	return msg
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// putPending keeps a new key for the Save As Secret step and returns the
// flow id that names it.
func (s *sessions) putPending(id string, p pendingKey) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return ""
	}
	now := s.now()
	for f, old := range sess.pending {
		if !now.Before(old.expires) || len(sess.pending) >= maxPending {
			delete(sess.pending, f)
		}
	}
	flow := randomToken()
	p.expires = now.Add(pendingLifetime)
	sess.pending[flow] = p
	return flow
}

// takePending removes the flow's key and returns it, if still there.
func (s *sessions) takePending(id, flow string) (pendingKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return pendingKey{}, false
	}
	p, ok := sess.pending[flow]
	delete(sess.pending, flow)
	if !ok || !s.now().Before(p.expires) {
		return pendingKey{}, false
	}
	return p, true
}

// restorePending puts a key back after a failed save (say, a secret name
// already taken), so the user can try another name.
func (s *sessions) restorePending(id, flow string, p pendingKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.byID[id]; ok && s.now().Before(p.expires) {
		sess.pending[flow] = p
	}
}

// sweepLocked drops expired sessions, at most once a minute, so that
// abandoned sessions do not pile up.
func (s *sessions) sweepLocked() {
	now := s.now()
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for id, sess := range s.byID {
		if !now.Before(sess.expires) {
			delete(s.byID, id)
		}
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
