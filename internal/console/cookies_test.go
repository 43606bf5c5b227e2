package console_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// proxyAddr is where the TLS-terminating proxy of these tests connects
// from: another loopback address than the browser's (127.0.0.1), so that
// a service can trust the one and not the other.
const proxyAddr = "127.0.0.2"

// startConsoleWith runs a key service with the console mounted with opts.
func startConsoleWith(t *testing.T, opts console.Options, more ...servicetest.Option) *servicetest.Service {
	t.Helper()
	more = append(more, servicetest.WithConfig(func(c *keyserver.Config) { c.Console = opts.Mount }))
	return servicetest.Start(t, more...)
}

// tlsProxy is a TLS-terminating reverse proxy in front of target, as Caddy
// or nginx would be: it sets X-Forwarded-For, -Host and -Proto (https),
// and connects from proxyAddr.
func tlsProxy(t *testing.T, target string) *httptest.Server {
	t.Helper()
	u := mustURL(t, target)
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(proxyAddr)}}).DialContext}
	if strings.HasPrefix(target, "https://") {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the proxy's hop only
	}
	p := httptest.NewTLSServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: tr,
	})
	t.Cleanup(p.Close)
	t.Cleanup(tr.CloseIdleConnections)
	return p
}

// headerTransport adds headers to every request, as a client that forges
// X-Forwarded-Proto would.
type headerTransport struct {
	next   http.RoundTripper
	header http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	return h.next.RoundTrip(r)
}

// consoleCookie finds the cookie named name in an answer's Set-Cookie.
func consoleCookie(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// wantConsoleCookie checks an answer sets the console cookie base, under
// its __Host- name and Secure when secure, with the attributes every
// console cookie has, and set (deleted false) or deleted.
func wantConsoleCookie(t *testing.T, what string, h http.Header, base string, secure, deleted bool) {
	t.Helper()
	name, other := base, "__Host-"+base
	if secure {
		name, other = other, name
	}
	c := consoleCookie(h, name)
	if c == nil {
		t.Fatalf("%s: no %s cookie in %q", what, name, h.Values("Set-Cookie"))
	}
	if consoleCookie(h, other) != nil {
		t.Errorf("%s: also sets %s: %q", what, other, h.Values("Set-Cookie"))
	}
	if c.Secure != secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("%s: %s cookie %q; want Secure %v, HttpOnly, SameSite=Strict, Path=/, no Domain", what, name, c.Raw, secure)
	}
	if gone := c.MaxAge < 0; gone != deleted {
		t.Errorf("%s: %s cookie %q; want deleted %v", what, name, c.Raw, deleted)
	}
}

// The console's cookies are Secure, and named with the __Host- prefix,
// whenever the browser reaches the console over https: the service's own
// TLS, a public URL that says https, or X-Forwarded-Proto: https from a
// trusted proxy; never because an untrusted client or proxy says so. The
// whole flow works each way, and logout deletes the very cookie login set.
func TestConsoleCookiesFollowHowTheBrowserComes(t *testing.T) {
	trustProxy := []netip.Prefix{netip.MustParsePrefix(proxyAddr + "/32")}
	trustOther := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name   string
		opts   console.Options
		tls    bool   // the service serves TLS itself
		proxy  bool   // the browser comes through the TLS proxy
		forged string // X-Forwarded-Proto the browser sends itself
		secure bool
	}{
		{name: "plain HTTP"},
		{name: "public URL https, behind a proxy not trusted", opts: console.Options{PublicURL: "https://keys.example.com", TrustedProxies: trustOther}, proxy: true, secure: true},
		{name: "public URL https, reached directly", opts: console.Options{PublicURL: "https://keys.example.com"}, secure: true},
		{name: "X-Forwarded-Proto from a trusted proxy", opts: console.Options{TrustedProxies: trustProxy}, proxy: true, secure: true},
		{name: "X-Forwarded-Proto from a proxy not trusted", opts: console.Options{TrustedProxies: trustOther}, proxy: true},
		{name: "X-Forwarded-Proto from the browser", opts: console.Options{TrustedProxies: trustProxy}, forged: "https"},
		{name: "public URL http, X-Forwarded-Proto from the browser", opts: console.Options{PublicURL: "http://127.0.0.1"}, forged: "https"},
		{name: "the service's own TLS", tls: true, secure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var more []servicetest.Option
			var pool *tls.Config
			if tc.tls {
				withTLS, roots := servicetest.WithTLS(t)
				more, pool = append(more, withTLS), &tls.Config{RootCAs: roots}
			}
			svc := startConsoleWith(t, tc.opts, more...)
			base := svc.URL
			var tr http.RoundTripper = &http.Transport{TLSClientConfig: pool}
			if tc.proxy {
				p := tlsProxy(t, svc.URL)
				base, tr = p.URL, p.Client().Transport
			}
			if tc.forged != "" {
				tr = headerTransport{next: tr, header: http.Header{"X-Forwarded-Proto": {tc.forged}}}
			}
			b := newBrowserless(t, base)
			b.c.Transport = tr

			_, h, _ := b.do(http.MethodGet, "/login", nil)
			wantConsoleCookie(t, "GET /login", h, "appkeys_login", tc.secure, false)
			code, h, page := b.post("/login", url.Values{"token": {svc.OwnerToken}})
			if code != http.StatusSeeOther || h.Get("Location") != "/" {
				t.Fatalf("login = %d to %q: %.300s", code, h.Get("Location"), page)
			}
			wantConsoleCookie(t, "login", h, "appkeys_session", tc.secure, false)
			wantConsoleCookie(t, "login", h, "appkeys_login", tc.secure, true)
			if code, page := b.get("/"); code != http.StatusOK || !strings.Contains(page, "owner@appkeys.local") {
				t.Fatalf("GET / after login = %d", code)
			}
			code, h, _ = b.post("/logout", nil)
			if code != http.StatusSeeOther || h.Get("Location") != "/login?m=out" {
				t.Fatalf("logout = %d to %q", code, h.Get("Location"))
			}
			wantConsoleCookie(t, "logout", h, "appkeys_session", tc.secure, true)
			if code, _ := b.get("/"); code != http.StatusSeeOther {
				t.Errorf("GET / after logout = %d, want a redirect to log in", code)
			}
		})
	}
}

// On an https request the console reads only the __Host- cookies: a
// cookie without the prefix may have been set over plain http by anyone
// on the network (cookies do not keep to a scheme), and a planted login
// cookie would defeat the login form's double-submit check, or a planted
// session cookie fix the victim's session.
func TestSecureConsoleIgnoresCookiesWithoutThePrefix(t *testing.T) {
	svc := startConsoleWith(t, console.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix(proxyAddr + "/32")}})
	p := tlsProxy(t, svc.URL)
	victim := newBrowserless(t, p.URL)
	victim.c.Transport = p.Client().Transport
	victim.login(svc.OwnerToken)
	session := victim.sessionCookieOf()

	// The same session's value under the plain name is no session.
	planted := newBrowserless(t, p.URL)
	planted.c.Transport = p.Client().Transport
	planted.c.Jar.SetCookies(mustURL(t, p.URL), []*http.Cookie{{Name: "appkeys_session", Value: session, Path: "/"}})
	if code, _ := planted.get("/"); code != http.StatusSeeOther {
		t.Errorf("GET / over https with the session under a plain name = %d, want a redirect to log in", code)
	}

	// A login form whose double-submit cookie was planted without the
	// prefix is refused, however well the token and csrf match.
	forged := newBrowserless(t, p.URL)
	forged.c.Transport = p.Client().Transport
	forged.c.Jar.SetCookies(mustURL(t, p.URL), []*http.Cookie{{Name: "appkeys_login", Value: "attacker-chosen", Path: "/"}})
	if code, _, _ := forged.do(http.MethodPost, "/login", url.Values{"token": {svc.OwnerToken}, "csrf": {"attacker-chosen"}}); code != http.StatusForbidden {
		t.Errorf("login over https with a planted plain login cookie = %d, want 403", code)
	}
}

// A real browser behind a TLS-terminating proxy the console trusts:
// Chromium stores the __Host- session cookie (it refuses one that breaks
// the prefix's rules: not Secure, a Domain, a Path other than /), sends it
// back, and the session works through a form and a logout, which leaves
// no session cookie behind.
func TestConsoleOverHTTPSInTheBrowser(t *testing.T) {
	svc := startConsoleWith(t, console.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix(proxyAddr + "/32")}})
	p := tlsProxy(t, svc.URL)
	// The proxy's certificate is httptest's own, for 127.0.0.1.
	b := newTab(t, p.URL, chromedp.Flag("ignore-certificate-errors", true))
	b.login(svc.OwnerToken)
	names := func() map[string]*network.Cookie {
		m := map[string]*network.Cookie{}
		for _, c := range b.cookies() {
			m[c.Name] = c
		}
		return m
	}
	got := names()
	s := got["__Host-appkeys_session"]
	if s == nil || !s.Secure || !s.HTTPOnly || s.SameSite != network.CookieSameSiteStrict || s.Path != "/" {
		t.Fatalf("the browser's session cookie over https: %+v (all: %v)", s, got)
	}
	if got["appkeys_session"] != nil || got["appkeys_login"] != nil || got["__Host-appkeys_login"] != nil {
		t.Errorf("cookies left besides the session's: %v", got)
	}
	b.click("Create App")
	b.fill("Name", "tls-fn")
	b.click("Cloud Function")
	b.click("Create App")
	b.waitText("Cloud Function tls-fn created")
	b.click("Close")
	b.logout()
	if got := names(); got["__Host-appkeys_session"] != nil {
		t.Errorf("the session cookie outlived the logout: %+v", got["__Host-appkeys_session"])
	}
}
