package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// idp is a real OpenID provider in the test process (mockoidc), whose
// token endpoint a test may make lie: mutate rewrites the ID token's
// claims and signs them again with the provider's own key, as a provider
// that issued a token for another client, another request or another
// time would.
type idp struct {
	*mockoidc.MockOIDC
	mu     sync.Mutex
	mutate func(jwt.MapClaims)
}

func startIDP(t *testing.T) *idp {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{MockOIDC: m}
	if err := m.AddMiddleware(p.rewrite); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

func (p *idp) lie(mutate func(jwt.MapClaims)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mutate = mutate
}

func (p *idp) rewrite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		mutate := p.mutate
		p.mu.Unlock()
		if r.URL.Path != mockoidc.TokenEndpoint || mutate == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["id_token"] == nil {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		parts := strings.Split(body["id_token"].(string), ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		claims := jwt.MapClaims{}
		_ = json.Unmarshal(raw, &claims)
		mutate(claims)
		signed, err := p.Keypair.SignJWT(claims)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body["id_token"] = signed
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
}

func (p *idp) user(email string, verified bool) {
	p.QueueUser(&mockoidc.MockUser{Subject: "sub-" + email, Email: email, EmailVerified: verified})
}

// startOIDCConsole runs a key service whose console signs in with p.
func startOIDCConsole(t *testing.T, p *idp, edit func(*console.Options), opts ...servicetest.Option) *servicetest.Service {
	t.Helper()
	o := console.Options{OIDC: &console.OIDC{Issuer: p.Issuer(), ClientID: p.ClientID, ClientSecret: p.ClientSecret, Name: "Mock IdP"}}
	if edit != nil {
		edit(&o)
	}
	opts = append(opts, servicetest.WithConfig(func(c *keyserver.Config) { c.Console = o.Mount }))
	return servicetest.Start(t, opts...)
}

// startSignIn drives the flow through plain HTTP up to the callback,
// which it returns unvisited: the console's redirect to the provider, the
// provider's redirect back.
func (b *browserless) startSignIn() string {
	b.t.Helper()
	_, cb := b.signInURLs()
	return cb
}

// signInURLs is startSignIn that also returns the provider's authorize
// URL the console sent the browser to.
func (b *browserless) signInURLs() (authorize, callback string) {
	b.t.Helper()
	code, h, page := b.do(http.MethodGet, "/login/oidc", nil)
	if code != http.StatusSeeOther {
		b.t.Fatalf("GET /login/oidc = %d:\n%s", code, page)
	}
	authorize = h.Get("Location")
	return authorize, b.authorize(authorize)
}

// authorize asks the provider, which signs the queued user in at once,
// and returns the callback it redirects to.
func (b *browserless) authorize(authorize string) string {
	b.t.Helper()
	resp, err := b.c.Get(authorize)
	if err != nil {
		b.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("the provider's authorize = %d", resp.StatusCode)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(cb.Path, "/login/oidc/callback") {
		b.t.Fatalf("the provider sent the browser to %q", resp.Header.Get("Location"))
	}
	return cb.RequestURI()
}

func TestOIDCSignInRefusesWhatItCannotTrust(t *testing.T) {
	p := startIDP(t)
	svc := startOIDCConsole(t, p, nil)
	ctx := context.Background()
	owner := ownerCaller(t, svc, svc.OwnerToken)
	users := func() int {
		us, err := svc.Server.Service.ListUsers(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		return len(us)
	}
	before := users()
	for _, tc := range []struct {
		name    string
		email   string
		verify  bool
		mutate  func(jwt.MapClaims)
		status  int
		message string
	}{
		// The control: the same rewriting, changing nothing, signs in, so
		// each refusal below is its claim's doing, not the rewriting's.
		{"control, re-signed unchanged", "owner@appkeys.local", true, func(jwt.MapClaims) {}, http.StatusOK, "Signed in"},
		{"wrong audience", "owner@appkeys.local", true, func(c jwt.MapClaims) { c["aud"] = []string{"another-client"} }, http.StatusUnauthorized, "could not be verified"},
		{"wrong nonce", "owner@appkeys.local", true, func(c jwt.MapClaims) { c["nonce"] = "a-nonce-of-another-request" }, http.StatusUnauthorized, "was not made for this request"},
		{"expired ID token", "owner@appkeys.local", true, func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
			c["nbf"] = time.Now().Add(-2 * time.Hour).Unix()
		}, http.StatusUnauthorized, "could not be verified"},
		{"another issuer", "owner@appkeys.local", true, func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }, http.StatusUnauthorized, "could not be verified"},
		{"unknown email", "stranger@appkeys.local", true, nil, http.StatusForbidden, "No appkeys user has the email stranger@appkeys.local."},
		{"email not verified", "owner@appkeys.local", false, nil, http.StatusForbidden, "has not verified your email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.lie(tc.mutate)
			defer p.lie(nil)
			p.user(tc.email, tc.verify)
			b := newBrowserless(t, svc.URL)
			cb := b.startSignIn()
			code, _, page := b.do(http.MethodGet, cb, nil)
			if code != tc.status || !strings.Contains(page, tc.message) {
				t.Errorf("callback = %d, want %d with %q:\n%s", code, tc.status, tc.message, page)
			}
			want := http.StatusSeeOther // to log in
			if tc.status == http.StatusOK {
				want = http.StatusOK
			}
			if code, _ := b.get("/"); code != want {
				t.Errorf("GET / after the sign-in = %d, want %d", code, want)
			}
		})
	}
	if n := users(); n != before {
		t.Errorf("users after refused sign-ins: %d, want %d (nobody created)", n, before)
	}

	t.Run("replayed state", func(t *testing.T) {
		p.user("owner@appkeys.local", true)
		b := newBrowserless(t, svc.URL)
		authorize, cb := b.signInURLs()
		flow := flowCookie(t, b)
		if code, _, page := b.do(http.MethodGet, cb, nil); code != http.StatusOK || !strings.Contains(page, "Signed in") {
			t.Fatalf("first callback = %d:\n%s", code, page)
		}
		// An attacker who captured the flow cookie replays the state: the
		// same callback (its code spent, the provider refuses it), and a
		// fresh code for the same state, nonce and PKCE challenge (which
		// appkeys itself must refuse: that flow finished).
		atk := newBrowserless(t, svc.URL)
		atk.c.Jar.SetCookies(mustURL(t, svc.URL), []*http.Cookie{flow})
		if code, _, page := atk.do(http.MethodGet, cb, nil); code != http.StatusUnauthorized || !strings.Contains(page, "did not confirm the sign-in") {
			t.Errorf("replayed callback = %d:\n%s", code, page)
		}
		p.user("owner@appkeys.local", true)
		fresh := atk.authorize(authorize)
		atk.c.Jar.SetCookies(mustURL(t, svc.URL), []*http.Cookie{flow})
		code, _, page := atk.do(http.MethodGet, fresh, nil)
		if code != http.StatusBadRequest || !strings.Contains(page, "This sign-in was used already") {
			t.Errorf("a fresh code for a finished flow's state = %d:\n%s", code, page)
		}
		if code, _ := atk.get("/"); code != http.StatusSeeOther {
			t.Errorf("the replay got a session: GET / = %d", code)
		}
	})
	t.Run("forged flow cookie", func(t *testing.T) {
		p.user("owner@appkeys.local", true)
		b := newBrowserless(t, svc.URL)
		cb := b.startSignIn()
		flow := flowCookie(t, b)
		// The attacker's own flow: random bits and an expiry, with a MAC
		// they cannot make; the state in the callback matches it.
		forged := &http.Cookie{Name: flow.Name, Value: "AAAA." + strings.SplitN(flow.Value, ".", 3)[1] + ".AAAA", Path: "/"}
		b.c.Jar.SetCookies(mustURL(t, svc.URL), []*http.Cookie{forged})
		if code, _, page := b.do(http.MethodGet, cb, nil); code != http.StatusBadRequest || !strings.Contains(page, "did not start in this browser") {
			t.Errorf("a forged flow cookie = %d:\n%s", code, page)
		}
	})
	t.Run("state of another browser", func(t *testing.T) {
		p.user("owner@appkeys.local", true)
		victim, atk := newBrowserless(t, svc.URL), newBrowserless(t, svc.URL)
		cb := atk.startSignIn() // the attacker's own sign-in, sent to the victim
		victim.startSignIn()
		code, _, page := victim.do(http.MethodGet, cb, nil)
		if code != http.StatusBadRequest || !strings.Contains(page, "did not start in this browser") {
			t.Errorf("a callback from another browser's flow = %d:\n%s", code, page)
		}
		if code, _ := victim.get("/"); code != http.StatusSeeOther {
			t.Errorf("login CSRF: the victim is signed in as the attacker (GET / = %d)", code)
		}
	})
}

func flowCookie(t *testing.T, b *browserless) *http.Cookie {
	t.Helper()
	for _, c := range b.c.Jar.Cookies(mustURL(t, b.base)) {
		if c.Name == "appkeys_oidc" {
			return &http.Cookie{Name: c.Name, Value: c.Value, Path: "/"}
		}
	}
	t.Fatal("no sign-in flow cookie")
	return nil
}

func TestOIDCAutoCreatesAMemberOnlyWhenTold(t *testing.T) {
	p := startIDP(t)
	var cfg *console.OIDC
	svc := startOIDCConsole(t, p, func(o *console.Options) {
		o.OIDC.AutoCreate = keyservice.RoleMember
		cfg = o.OIDC
	})
	// The organization's id is known once the service bootstrapped it: a
	// restart on the same data mounts the console with it.
	owner := ownerCaller(t, svc, svc.OwnerToken)
	cfg.OrgID = owner.User.OrgID
	svc.Restart()
	p.user("newcomer@appkeys.local", true)
	b := newBrowserless(t, svc.URL)
	if code, _, page := b.do(http.MethodGet, b.startSignIn(), nil); code != http.StatusOK {
		t.Fatalf("auto-create sign-in = %d:\n%s", code, page)
	}
	code, page := b.get("/")
	if code != http.StatusOK || !strings.Contains(page, "newcomer@appkeys.local") {
		t.Fatalf("GET / after the sign-in = %d", code)
	}
	var role string
	us, _ := svc.Server.Service.ListUsers(context.Background(), owner)
	for _, u := range us {
		if u.Email == "newcomer@appkeys.local" {
			role = u.Role
		}
	}
	if role != keyservice.RoleMember {
		t.Errorf("the auto-created user's role = %q, want member", role)
	}
}

func TestTokenLoginCanBeTurnedOff(t *testing.T) {
	p := startIDP(t)
	svc := startOIDCConsole(t, p, func(o *console.Options) { o.NoTokenLogin = true })
	b := newBrowserless(t, svc.URL)
	code, page := b.get("/login")
	if code != http.StatusOK || strings.Contains(page, "User token") || !strings.Contains(page, "Sign in with Mock IdP") {
		t.Fatalf("login page with token login off = %d:\n%s", code, page)
	}
	// The form posted anyway, with a valid double-submit token and a real token.
	b.csrf = loginCSRF(t, b)
	code, _, page = b.post("/login", url.Values{"token": {svc.OwnerToken}})
	if code != http.StatusForbidden || !strings.Contains(page, "turned off") {
		t.Errorf("token login with it turned off = %d:\n%s", code, page)
	}
	if code, _ := b.get("/"); code != http.StatusSeeOther {
		t.Errorf("GET / after a refused token login = %d", code)
	}
}

func loginCSRF(t *testing.T, b *browserless) string {
	for _, c := range b.c.Jar.Cookies(mustURL(t, b.base)) {
		if c.Name == "appkeys_login" {
			return c.Value
		}
	}
	t.Fatal("no login cookie")
	return ""
}
