// Package console is the key service's web console: the Container Service
// and App instance pages, the API keys views with their Active and Orphaned
// tabs, and the create, roll, save-as-secret and revoke flows, with the Cloud
// Portal's words on the buttons. It is rendered on the server with
// html/template from embedded files; a small script only drives the
// dialogs and the clipboard. It calls keyservice directly, on the same mux
// as the /v1 API.
//
// Browser sessions live in the key service's store (see
// keyservice.ConsoleSession), so any replica serves any session and a
// restart logs nobody out. A session's row holds nothing secret: no token
// (the console acts as the session's user, read live at every request)
// and no key. A key created here is shown once, in the page that answers
// the create, and kept nowhere on the server; for Save As Secret that page
// carries it in a hidden form field, sealed and bound to the session, the
// flow and a five-minute expiry (see keyservice.SealNewKey), and the form
// posts it back. A store error never ends a session: only a session that
// is really gone (ended, expired, its user deleted) sends the browser to
// log in.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures the console.
type Options struct {
	// PublicURL is the URL browsers reach the console at (--public-url).
	// When it is https, the console's cookies are Secure, and carry the
	// __Host- prefix, on every request (see cookies.go).
	PublicURL string
	// TrustedProxies are the proxies whose X-Forwarded-Proto the console
	// believes (--trusted-proxies); see ParseTrustedProxies.
	TrustedProxies []netip.Prefix
	// Logger receives the console's logs; slog.Default() when nil.
	Logger *slog.Logger
	// OIDC, when set, offers "Sign in with <name>" (see OIDC).
	OIDC *OIDC
	// NoTokenLogin turns off login by pasting a user token
	// (--console-token-login=false), for installs that sign in with OIDC.
	NoTokenLogin bool
}

// Mount registers the console on mux with default options: GET / and its
// own paths, none under /v1/ nor the probes'. It is keyserver.Config.Console.
func Mount(svc *keyservice.Service, mux *http.ServeMux) { Options{}.Mount(svc, mux) }

// Mount registers the console with these options; Options{…}.Mount is a
// keyserver.Config.Console.
func (o Options) Mount(svc *keyservice.Service, mux *http.ServeMux) {
	newConsole(svc, o).register(mux)
}

// console serves the pages. It holds no session state of its own: the
// service keeps sessions, on the service's clock, so a test that moves the
// service's time also expires them.
type console struct {
	svc    *keyservice.Service
	log    *slog.Logger
	pages  map[string]*template.Template
	assets map[string]string // file name → URL with a content hash

	publicHTTPS    bool // PublicURL is https
	publicURL      string
	trustedProxies []netip.Prefix

	oidc       *oidcLogin // nil without OIDC
	tokenLogin bool
}

func newConsole(svc *keyservice.Service, o Options) *console {
	c := &console{svc: svc, log: o.Logger, trustedProxies: o.TrustedProxies, publicURL: o.PublicURL, tokenLogin: !o.NoTokenLogin}
	if o.OIDC != nil {
		c.oidc = &oidcLogin{cfg: *o.OIDC}
		if c.oidc.cfg.Name == "" {
			c.oidc.cfg.Name = "your identity provider"
		}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if u, err := url.Parse(o.PublicURL); err == nil && strings.EqualFold(u.Scheme, "https") {
		c.publicHTTPS = true
	}
	c.assets = assetURLs()
	c.pages = parsePages(c.assets)
	return c
}

func (c *console) register(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		// URLs carry a content hash, so a long cache is safe.
		w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
		files.ServeHTTP(w, r)
	})))
	mux.Handle("GET /login", secured(http.HandlerFunc(c.loginPage)))
	mux.Handle("POST /login", secured(http.HandlerFunc(c.login)))
	mux.Handle("POST /logout", c.authed(c.logout))
	if c.oidc != nil {
		mux.Handle("GET /login/oidc", secured(http.HandlerFunc(c.startOIDC)))
		mux.Handle("GET "+oidcCallbackPath, secured(http.HandlerFunc(c.oidcCallback)))
	}
	mux.Handle("GET /{$}", c.authed(c.home))
	mux.Handle("POST /apps", c.authed(c.createApp))
	mux.Handle("GET /apps/{id}", c.authed(c.appPage))
	mux.Handle("POST /apps/{id}/delete", c.authed(c.deleteApp))
	mux.Handle("GET /apps/{id}/keys", c.authed(c.keysPage))
	mux.Handle("POST /apps/{id}/keys", c.authed(c.createKey))
	mux.Handle("GET /keys", c.authed(c.keysPage))
	mux.Handle("GET /keys/{id}", c.authed(c.keyPage))
	mux.Handle("POST /keys/{id}/revoke", c.authed(c.revokeKey))
	mux.Handle("POST /keys/{id}/roll", c.authed(c.rollKey))
	mux.Handle("POST /keys/{id}/limits", c.authed(c.editLimits))
	mux.Handle("POST /keys/lookup", c.authed(c.lookupKey))
	mux.Handle("POST /new-key/{flow}/secret", c.authed(c.saveAsSecret))
	mux.Handle("GET /users", c.authed(c.usersPage))
	mux.Handle("POST /users", c.authed(c.createUser))
	mux.Handle("POST /users/{id}/role", c.authed(c.changeRole))
	mux.Handle("POST /users/{id}/remove", c.authed(c.removeUser))
	mux.Handle("GET /secrets", c.authed(c.secretsPage))
	mux.Handle("POST /secrets", c.authed(c.createSecret))
	mux.Handle("POST /secrets/reveal", c.authed(c.revealSecret))
	mux.Handle("POST /secrets/delete", c.authed(c.deleteSecret))
	mux.Handle("GET /audit", c.authed(c.auditPage))
	c.registerWebhooks(mux)
}

// secured adds the headers every console response carries. The policy
// allows no inline script or style, so injected markup cannot run.
func secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			// Pages may show a key or a verifier token once: never cache them.
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// request is what an authenticated handler knows about its caller.
type request struct {
	sess   session
	caller keyservice.Caller
	user   keyservice.User
	org    keyservice.Org
}

// authed resolves the session, and with it the user it acts as, and for
// POSTs checks its CSRF token before h runs. The user is read live with the
// session, so a deleted user's session dies at once and a changed role
// applies at the next request.
func (c *console) authed(h func(http.ResponseWriter, *http.Request, *request)) http.Handler {
	return secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookie, ok := c.cookie(r, sessionCookie)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		stored, err := c.svc.ConsoleSession(r.Context(), cookie)
		if err != nil {
			if keyservice.KindOf(err) == keyservice.KindUnauthorized {
				// The session is really gone: ended, expired, or its user
				// deleted (which deletes the row too).
				c.setCookie(w, r, sessionCookie, "", -1)
				http.Redirect(w, r, "/login?m=expired", http.StatusSeeOther)
				return
			}
			// Anything else (the store away, the request canceled, an
			// error nobody classified) says nothing about the session:
			// the row and the cookie stay, and the next request, once
			// the store answers, finds the user still logged in.
			c.fail(w, r, nil, err)
			return
		}
		sess := newSession(cookie, stored)
		user, org, err := c.svc.Me(r.Context(), stored.Caller)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		req := &request{sess: sess, caller: stored.Caller, user: user, org: org}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				c.showError(w, r, req, http.StatusBadRequest, "The form could not be read. Reload the page and try again.")
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), sess.CSRF) {
				c.showError(w, r, req, http.StatusForbidden, "This form did not come from your console session, or it is out of date. Reload the page and try again.")
				return
			}
		}
		h(w, r, req)
	}))
}

// assetURLs names each static file by a hash of its content, so browsers
// cache them long and still see a new build at once.
func assetURLs() map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(path, "static/")
		out[name] = "/static/" + name + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	})
	return out
}

func parsePages(assets map[string]string) map[string]*template.Template {
	funcs := template.FuncMap{
		"asset":    func(name string) string { return assets[name] },
		"kind":     kindName,
		"role":     roleName,
		"date":     formatDate,
		"datetime": formatDateTime,
		"at":       func(t time.Time) string { return formatDateTime(&t) },
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"reason":   orphanReason,
		"plural":   pluralWord,
		"count":    groupDigits,
		"add":      func(a, b int) int { return a + b },
		"sub":      func(a, b int) int { return a - b },
		"limits":   limitsText,
		"periods":  func() any { return ratePeriods },
		// dict passes several values to a shared template.
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		},
	}
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	// A page's file, and the files of its dialogs.
	files := map[string][]string{"keys": {"roll.html", "limitsfields.html"}, "key": {"limitsfields.html"}}
	for _, name := range []string{"login", "home", "app", "keys", "error", "key", "users", "secrets", "audit", "signedin", "webhooks"} {
		t := template.Must(base.Clone())
		for _, f := range append([]string{name + ".html"}, files[name]...) {
			t = template.Must(t.ParseFS(templateFS, "templates/"+f))
		}
		pages[name] = t
	}
	return pages
}

// render writes a page. Templates are parsed at start, so a failure here
// is a bug or a client gone away: logged, never shown in half.
func (c *console) render(w http.ResponseWriter, status int, name string, data *pageData) {
	var buf strings.Builder
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// showError renders a page that says what went wrong, in words.
func (c *console) showError(w http.ResponseWriter, r *http.Request, req *request, status int, msg string) {
	d := c.data(r, req, "Error")
	d.Error = msg
	d.Status = status
	c.render(w, status, "error", d)
}

// fail shows a service error. Domain errors carry a message fit for the
// user; anything else is logged and named only by the request id.
func (c *console) fail(w http.ResponseWriter, r *http.Request, req *request, err error) {
	var de *keyservice.Error
	if errors.As(err, &de) {
		c.showError(w, r, req, statusOf(w, de.Kind), sentence(de.Message))
		return
	}
	id := w.Header().Get("X-Request-Id")
	c.log.Error("console: request failed", "request_id", id, "path", r.URL.Path, "err", err)
	c.showError(w, r, req, http.StatusInternalServerError, fmt.Sprintf("Something went wrong on our side. Try again; if it persists, quote request %s.", id))
}

// statusOf is the status of a page that shows a domain error of kind. A
// 503 also tells the browser when to try again.
func statusOf(w http.ResponseWriter, kind keyservice.Kind) int {
	switch kind {
	case keyservice.KindForbidden:
		return http.StatusForbidden
	case keyservice.KindNotFound:
		return http.StatusNotFound
	case keyservice.KindConflict:
		return http.StatusConflict
	case keyservice.KindInvalid:
		return http.StatusUnprocessableEntity
	case keyservice.KindUnavailable:
		w.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable
	case keyservice.KindUnauthorized:
		return http.StatusUnauthorized
	}
	return http.StatusBadRequest
}

// sentence turns a service message into a sentence for the page.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}
