package console

import (
	"net/http"
	"net/netip"
	"strings"
)

// The console's cookies are Secure whenever the browser reaches the
// console over https, and then carry the __Host- prefix, which browsers
// accept only from a secure origin, with Path=/ and no Domain: a cookie
// nobody can plant over plain http nor from a sibling subdomain.
//
// The console often sits behind a proxy that terminates TLS, so the
// request it sees is plain http. It is still "over https" when the
// operator says so (--public-url https://…), when the service terminates
// TLS itself, or when a proxy the operator trusts (--trusted-proxies) says
// X-Forwarded-Proto: https. Anyone else's X-Forwarded-Proto is ignored: a
// client that could make the console drop Secure, or add the prefix, by
// saying so would choose the cookies' protection itself.

const hostPrefix = "__Host-"

// secure reports whether the browser reached the console over https.
func (c *console) secure(r *http.Request) bool {
	if c.publicHTTPS || r.TLS != nil {
		return true
	}
	// A chain of proxies may list one scheme each; the first is the
	// client-facing one.
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https") && c.fromTrustedProxy(r)
}

// fromTrustedProxy reports whether the request's peer is a trusted proxy.
func (c *console) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap().WithZone("")
	for _, p := range c.trustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// cookieName is the name the console cookie base has on this request.
func (c *console) cookieName(r *http.Request, base string) string {
	if c.secure(r) {
		return hostPrefix + base
	}
	return base
}

// cookie reads the console cookie base under the name that matches the
// request, and that one only. On https a cookie without the prefix is
// ignored: cookies do not keep to a scheme, so it may have been set over
// plain http by anyone on the network, and a planted login cookie would
// defeat the login form's double-submit check, a planted session cookie
// fix the victim's session.
func (c *console) cookie(r *http.Request, base string) (string, bool) {
	ck, err := r.Cookie(c.cookieName(r, base))
	if err != nil {
		return "", false
	}
	return ck.Value, true
}

// setCookie writes the console cookie base: HttpOnly, SameSite=Strict,
// Path=/ and no Domain always; Secure and __Host- over https. maxAge < 0
// deletes it, with the same name and attributes, or a browser would keep
// the cookie (and refuse a __Host- one without Secure).
func (c *console) setCookie(w http.ResponseWriter, r *http.Request, base, value string, maxAge int) {
	secure := c.secure(r)
	name := base
	if secure {
		name = hostPrefix + base
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure,
	})
}
