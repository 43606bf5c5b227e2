package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

var loginMessages = map[string]string{
	"expired": "Your session has expired. Log in again.",
	"out":     "You have logged out.",
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	if cookie, ok := c.cookie(r, sessionCookie); ok {
		if _, err := c.svc.ConsoleSession(r.Context(), cookie); err == nil {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
	}
	c.renderLogin(w, r, http.StatusOK, loginMessages[r.URL.Query().Get("m")])
}

// renderLogin shows the login form with a fresh double-submit token.
func (c *console) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := randomToken()
	c.setCookie(w, r, loginCookie, token, 3600)
	d := c.data(r, nil, "Log in")
	d.LoginCSRF, d.LoginMessage, d.Status = token, msg, status
	d.TokenLogin = c.tokenLogin
	if c.oidc != nil {
		d.OIDCName = c.oidc.cfg.Name
	}
	c.render(w, status, "login", d)
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, r, http.StatusBadRequest, "The form could not be read. Try again.")
		return
	}
	if !c.tokenLogin {
		c.refusedLogin(r, "token login turned off")
		c.renderLogin(w, r, http.StatusForbidden, "Logging in with a user token is turned off here. Use the sign-in above.")
		return
	}
	if formToken, ok := c.cookie(r, loginCookie); !ok || !sameToken(r.PostForm.Get("csrf"), formToken) {
		c.renderLogin(w, r, http.StatusForbidden, "The login form was out of date. Paste your token again.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		c.renderLogin(w, r, http.StatusUnprocessableEntity, "Paste your user token to log in.")
		return
	}
	// A session this browser already had ends with this login: one
	// browser, one session, and no forgotten one left alive.
	old, _ := c.cookie(r, sessionCookie)
	cookie, _, err := c.svc.StartConsoleSession(r.Context(), token, old)
	switch keyservice.KindOf(err) {
	case 0:
		if err != nil {
			c.log.Error("console: start a session", "err", err)
			c.renderLogin(w, r, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
			return
		}
	case keyservice.KindUnavailable:
		c.renderLogin(w, r, http.StatusServiceUnavailable, "The key store cannot be reached right now. Try again in a moment.")
		return
	case keyservice.KindForbidden: // a valid token, but an admin's or a sidecar's
		c.refusedLogin(r, "not a user token")
		c.renderLogin(w, r, http.StatusUnauthorized, "That is not a user token. The console needs the token of a user of an organization.")
		return
	default:
		c.refusedLogin(r, "token not accepted")
		c.renderLogin(w, r, http.StatusUnauthorized, "That token was not accepted. Check that you pasted all of it.")
		return
	}
	c.setCookie(w, r, sessionCookie, cookie, int(sessionLifetime/time.Second))
	c.setCookie(w, r, loginCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// refusedLogin logs a login that failed. It is not in the audit log: the
// token names no user, so no organization whose log could hold it. The
// log line says where it came from, for whoever watches for guessing,
// and never carries the token.
func (c *console) refusedLogin(r *http.Request, reason string) {
	c.log.Info("console: login refused", "reason", reason, "remote_addr", r.RemoteAddr)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, req *request) {
	// The row goes, so the cookie stops working on every replica at once.
	// If the store is away, say so rather than pretend the session ended.
	if err := c.svc.EndConsoleSession(r.Context(), req.sess.cookie); err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login?m=out", http.StatusSeeOther)
}

// loadApps lists the apps with their key counts, and the service's total.
