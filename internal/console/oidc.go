package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// OIDC configures sign-in with OpenID Connect (appkeys serve --oidc-…):
// the authorization code flow with PKCE, state and nonce; the ID token
// verified by go-oidc against the provider's keys, this client as its
// audience; the user found by the verified email the token carries.
type OIDC struct {
	// Issuer is the provider's issuer URL; discovery reads its
	// /.well-known/openid-configuration at the first sign-in.
	Issuer       string
	ClientID     string
	ClientSecret string
	// Name is the provider's name on the login page: "Sign in with Name".
	Name string
	// AutoCreate, when "member", adds a verified email nobody has yet to
	// OrgID as a member; "" refuses it.
	AutoCreate string
	// OrgID is where users are looked up and auto-created; "" looks in
	// every organization (an email found in several is refused).
	OrgID string
	// HTTPClient talks to the provider; nil is http.DefaultClient.
	HTTPClient *http.Client
}

// oidcCookie carries a sign-in under way, from the click to the
// provider's answer: a flow token the service signed (random bits and an
// expiry), whence the state, the nonce and the PKCE verifier are derived;
// its hash is recorded once the callback used it, so it works only once. SameSite=Lax, unlike the session's: the
// provider's redirect back is a cross-site navigation, on which a Strict
// cookie is not sent.
const oidcCookie = "appkeys_oidc"

const oidcCallbackPath = "/login/oidc/callback"

type oidcLogin struct {
	cfg OIDC

	mu         sync.Mutex
	discovered *oidc.Provider // nil until discovery succeeds
}

// provider returns the provider, running discovery the first time (and
// again after a failure, so a provider down at start is no lasting harm).
func (o *oidcLogin) provider(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.discovered != nil {
		return o.discovered, nil
	}
	ctx, cancel := context.WithTimeout(o.clientContext(ctx), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	o.discovered = p
	return p, nil
}

func (o *oidcLogin) clientContext(ctx context.Context) context.Context {
	if o.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	return ctx
}

// derive makes one of the flow's values from its token.
func derive(flow, what string) string {
	m := hmac.New(sha256.New, []byte(flow))
	m.Write([]byte(what))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *console) oauthConfig(r *http.Request, p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.oidc.cfg.ClientID, ClientSecret: c.oidc.cfg.ClientSecret,
		Endpoint: p.Endpoint(), RedirectURL: c.baseURL(r) + oidcCallbackPath,
		Scopes: []string{oidc.ScopeOpenID, "email"},
	}
}

// baseURL is where browsers reach the console: --public-url, or else the
// request's own host (the provider accepts only the redirect URLs
// registered with it, so a forged Host header leads nowhere).
func (c *console) baseURL(r *http.Request) string {
	if c.publicURL != "" {
		return strings.TrimSuffix(c.publicURL, "/")
	}
	scheme := "http"
	if c.secure(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// startOIDC sends the browser to the provider.
func (c *console) startOIDC(w http.ResponseWriter, r *http.Request) {
	p, err := c.oidc.provider(r.Context())
	if err != nil {
		c.log.Warn("console: OpenID Connect discovery", "issuer", c.oidc.cfg.Issuer, "err", err)
		c.renderLogin(w, r, http.StatusServiceUnavailable, fmt.Sprintf("%s cannot be reached right now. Try again in a moment.", c.oidc.cfg.Name))
		return
	}
	flow := c.svc.NewOIDCFlow() // signed, so starting stores nothing
	c.setFlowCookie(w, r, flow, int(keyservice.OIDCLoginLifetime/time.Second))
	url := c.oauthConfig(r, p).AuthCodeURL(derive(flow, "state"), oidc.Nonce(derive(flow, "nonce")), oauth2.S256ChallengeOption(derive(flow, "pkce")))
	http.Redirect(w, r, url, http.StatusSeeOther)
}

// oidcCallback finishes a sign-in: every check fails closed, with a page
// that says what to do, and the reason in the log.
func (c *console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := c.oidc.cfg.Name
	refuse := func(status int, reason, msg string) {
		c.log.Info("console: sign-in with OpenID Connect refused", "reason", reason, "remote_addr", r.RemoteAddr)
		c.renderLogin(w, r, status, msg)
	}
	flow, ok := c.cookie(r, oidcCookie)
	c.setFlowCookie(w, r, "", -1)
	q := r.URL.Query()
	if !ok {
		refuse(http.StatusBadRequest, "no flow cookie", "This sign-in did not start in this browser, or took too long. Sign in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		refuse(http.StatusUnauthorized, "provider error "+truncateForLog(e), fmt.Sprintf("%s did not sign you in. Sign in again, or ask your administrator.", name))
		return
	}
	if _, err := c.svc.CheckOIDCFlow(flow); err != nil {
		refuse(http.StatusBadRequest, "flow cookie forged or expired", "This sign-in did not start in this browser, or took too long. Sign in again.")
		return
	}
	if !sameToken(q.Get("state"), derive(flow, "state")) {
		refuse(http.StatusBadRequest, "state mismatch", "This sign-in did not start in this browser. Sign in again.")
		return
	}
	p, err := c.oidc.provider(ctx)
	if err != nil {
		c.renderLogin(w, r, http.StatusServiceUnavailable, fmt.Sprintf("%s cannot be reached right now. Try again in a moment.", name))
		return
	}
	pctx, cancel := context.WithTimeout(c.oidc.clientContext(ctx), 10*time.Second)
	defer cancel()
	tok, err := c.oauthConfig(r, p).Exchange(pctx, q.Get("code"), oauth2.VerifierOption(derive(flow, "pkce")))
	if err != nil {
		refuse(http.StatusUnauthorized, "code exchange: "+truncateForLog(err.Error()), fmt.Sprintf("%s did not confirm the sign-in. Sign in again.", name))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse(http.StatusUnauthorized, "no id_token", fmt.Sprintf("%s sent no ID token. Ask your administrator to check the client's settings.", name))
		return
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.oidc.cfg.ClientID, Now: c.svc.Now}).Verify(pctx, raw)
	if err != nil {
		// A wrong audience, a wrong issuer, a bad signature, an expired
		// token: all the same to the user.
		refuse(http.StatusUnauthorized, "id token: "+truncateForLog(err.Error()), fmt.Sprintf("The sign-in from %s could not be verified: it was not made for this console, or it has expired. Sign in again.", name))
		return
	}
	if !sameToken(idt.Nonce, derive(flow, "nonce")) {
		refuse(http.StatusUnauthorized, "nonce mismatch", fmt.Sprintf("The sign-in from %s was not made for this request. Sign in again.", name))
		return
	}
	// Only now, the provider having vouched for this very flow, is it
	// recorded as used: nothing unauthenticated writes to the store.
	if err := c.svc.FinishOIDCLogin(ctx, flow); err != nil {
		if keyservice.KindOf(err) == keyservice.KindUnauthorized {
			refuse(http.StatusBadRequest, "flow replayed or expired", "This sign-in was used already or took too long. Sign in again.")
			return
		}
		c.log.Error("console: finish a sign-in", "err", err)
		c.renderLogin(w, r, http.StatusServiceUnavailable, "The key store cannot be reached right now. Try again in a moment.")
		return
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Email == "" {
		refuse(http.StatusForbidden, "no email claim", fmt.Sprintf("%s did not tell appkeys your email. Ask your administrator to allow the email scope.", name))
		return
	}
	if !claims.EmailVerified {
		refuse(http.StatusForbidden, "email not verified", fmt.Sprintf("%s has not verified your email %s, so appkeys cannot tell who you are. Verify it with %s, then sign in again.", name, claims.Email, name))
		return
	}
	u, created, err := c.svc.OIDCUser(ctx, claims.Email, c.oidc.cfg.OrgID, c.oidc.cfg.AutoCreate)
	switch keyservice.KindOf(err) {
	case 0:
		if err != nil {
			c.log.Error("console: find the signed-in user", "err", err)
			c.renderLogin(w, r, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
			return
		}
	case keyservice.KindNotFound, keyservice.KindInvalid:
		refuse(http.StatusForbidden, "unknown email", fmt.Sprintf("No appkeys user has the email %s. Ask an Organization Owner or Aura Owner to add you, then sign in again.", claims.Email))
		return
	case keyservice.KindConflict:
		refuse(http.StatusForbidden, "email in several organizations", fmt.Sprintf("The email %s belongs to users of several organizations. Log in with your user token instead.", claims.Email))
		return
	default:
		c.renderLogin(w, r, http.StatusServiceUnavailable, "The key store cannot be reached right now. Try again in a moment.")
		return
	}
	if created {
		c.log.Info("console: user added by sign-in with OpenID Connect", "user", u.ID, "org", u.OrgID)
	}
	old, _ := c.cookie(r, sessionCookie)
	cookie, _, err := c.svc.StartConsoleSessionAs(ctx, u, old)
	if err != nil {
		c.renderLogin(w, r, http.StatusServiceUnavailable, "The key store cannot be reached right now. Try again in a moment.")
		return
	}
	c.setCookie(w, r, sessionCookie, cookie, int(sessionLifetime/time.Second))
	c.setCookie(w, r, loginCookie, "", -1)
	// A page rather than a redirect: this request came from the provider's
	// site, and a browser does not send the new SameSite=Strict cookie on
	// a redirect that continues a cross-site navigation. The page's own
	// refresh is a same-site navigation, which does.
	d := c.data(r, nil, "Signed in")
	d.SignedIn = true
	c.render(w, http.StatusOK, "signedin", d)
}

// setFlowCookie writes the sign-in flow cookie: as setCookie, but Lax.
func (c *console) setFlowCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	secure := c.secure(r)
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName(r, oidcCookie), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure,
	})
}

// truncateForLog bounds what a provider or an error says in a log line.
func truncateForLog(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
