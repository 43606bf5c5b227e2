package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/appkeys/appkeys/caddymodule"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// adminPort is this package's own Caddy admin port: test packages run as
// concurrent processes, and caddymodule's tests use 2931.
const adminPort = 2941

var admin = fmt.Sprintf("localhost:%d", adminPort)

var keyNames atomic.Int64 // key names are unique per app

// stack is one test's world: the real key service, a real upstream, and
// the package's one Caddy.
type stack struct {
	t        *testing.T
	tester   *caddytest.Tester
	ks       *servicetest.Service
	owner    *client.Client
	upstream *upstream
	http     *http.Client
	loaded   bool
	// globals are more global options for load, such as an h2c server.
	globals []string
}

func newStack(t *testing.T, opts ...servicetest.Option) *stack {
	t.Helper()
	ks := servicetest.Start(t, opts...)
	owner, err := client.New(ks.URL, ks.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{
		t:        t,
		tester:   caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort}),
		ks:       ks,
		owner:    owner,
		upstream: newUpstream(t),
		http: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute},
			Timeout:   15 * time.Second,
		},
	}
	// Runs before the key service stops: the feed subscribers go first.
	t.Cleanup(s.unload)
	return s
}

// unload leaves Caddy with an empty config, which stops every sidecar
// engine and feed subscriber of the test.
func (s *stack) unload() {
	s.http.CloseIdleConnections()
	if s.loaded {
		s.tester.InitServer(fmt.Sprintf("{\n\tadmin %s\n\tlog {\n\t\tlevel ERROR\n\t}\n}\n", admin), "caddyfile")
		s.loaded = false
	}
}

// load replaces Caddy's config with sites that ask keyService.
func (s *stack) load(keyService string, sites ...Site) {
	s.t.Helper()
	s.loadCaddyfile(caddyfile(admin, s.globals, keyService, s.upstream.Listener.Addr().String(), sites...))
}

// loadCaddyfile replaces Caddy's config with cfg, a whole Caddyfile that
// keeps the package's admin endpoint.
func (s *stack) loadCaddyfile(cfg string) {
	s.t.Helper()
	s.tester.InitServer(cfg, "caddyfile")
	s.loaded = true
	if s.t.Failed() {
		s.t.FailNow()
	}
}

// harnessLoad is loadCaddyfile as the shared harnesses (MeasureRevocations,
// MeasureLeakBatch) take it: an error instead of stopping the test, since
// they may run on a goroutine of their own.
func (s *stack) harnessLoad(cfg string) error {
	s.tester.InitServer(cfg, "caddyfile")
	s.loaded = true
	if s.t.Failed() {
		return fmt.Errorf("caddy did not load the config")
	}
	return nil
}

func (s *stack) app(name string) *client.CreatedApp {
	s.t.Helper()
	a, err := s.owner.CreateApp(context.Background(), client.CreateAppRequest{Name: name, Kind: client.KindCloudFunction})
	if err != nil {
		s.t.Fatal(err)
	}
	return a
}

func (s *stack) site(a *client.CreatedApp, auth ...string) Site {
	s.t.Helper()
	port, err := FreePort()
	if err != nil {
		s.t.Fatal(err)
	}
	return Site{Port: port, App: a.ID, Token: a.VerifierToken, Auth: auth}
}

func (s *stack) key(c *client.Client, appID string, expires time.Time) *client.CreatedKey {
	s.t.Helper()
	if c == nil {
		c = s.owner
	}
	k, err := c.CreateKey(context.Background(), appID, client.CreateKeyRequest{Name: fmt.Sprintf("e2e-%d", keyNames.Add(1)), ExpiresAt: expires})
	if err != nil {
		s.t.Fatal(err)
	}
	return k
}

// answer is what a client of the sidecar sees.
type answer struct {
	status int
	header http.Header
	body   string
}

// get sends GET / to site with the given headers.
func (s *stack) get(site Site, hdr ...string) answer {
	s.t.Helper()
	a, err := s.try(site, hdr...)
	if err != nil {
		s.t.Fatal(err)
	}
	return a
}

func (s *stack) try(site Site, hdr ...string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, site.URL(), nil)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// waitStatus polls site with key until it answers want, failing the test
// after bound or on an answer in neither want nor allowed.
func (s *stack) waitStatus(site Site, key string, want int, bound time.Duration, allowed ...int) time.Duration {
	s.t.Helper()
	start := time.Now()
	for {
		a, err := s.try(site, "X-API-Key", key)
		if err != nil {
			s.t.Fatal(err)
		}
		if a.status == want {
			return time.Since(start)
		}
		ok := false
		for _, st := range allowed {
			ok = ok || a.status == st
		}
		if !ok {
			s.t.Fatalf("waiting for %d: got %d (%s)", want, a.status, a.body)
		}
		if time.Since(start) > bound {
			s.t.Fatalf("no %d within %s: still %d", want, bound, a.status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// upstream is the app behind the sidecar: it records the headers it sees.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Header.Clone())
		u.mu.Unlock()
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Appkeys-Key-Id"))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) headers() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.seen...)
}

// adminMetrics reads Caddy's admin /metrics, where the sidecar's families
// live.
func adminMetrics(t *testing.T) string {
	t.Helper()
	return scrape(t, "http://"+admin+"/metrics")
}

func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %d %v", u, resp.StatusCode, err)
	}
	return string(b)
}

// verifyCalls is the key service's own count of verify calls.
func (s *stack) verifyCalls() float64 {
	s.t.Helper()
	return metric(scrape(s.t, s.ks.URL+"/metrics"), "appkeys_verify_results_total")
}

// ksProxy stands between the sidecar and the key service: it counts the
// change-feed polls in flight, can fail the feed alone, and can slow verify
// calls down.
type ksProxy struct {
	URL        string
	failEvents atomic.Bool
	verifies   atomic.Int64
	// verifyDelay holds each verify call this long before passing it on,
	// so that concurrent requests are all in flight at once.
	verifyDelay atomic.Int64 // a time.Duration
	heads       atomic.Int64 // feed subscriptions started (polls without after=)
	mu          sync.Mutex
	inflight    map[string]int // events long-polls (after=) in flight by Authorization
	cancels     map[*http.Request]context.CancelFunc
}

func newKSProxy(t *testing.T, target string) *ksProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &ksProxy{inflight: map[string]int{}, cancels: map[*http.Request]context.CancelFunc{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A plain http.Server whose Close drops the long-polls at once.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/verify":
			p.verifies.Add(1)
			if d := time.Duration(p.verifyDelay.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
		case "/v1/events":
			if p.failEvents.Load() {
				http.Error(w, `{"error":{"code":"internal","message":"feed broken by the test"}}`, http.StatusInternalServerError)
				return
			}
			if !r.URL.Query().Has("after") {
				p.heads.Add(1) // answered at once; not a poll
				break
			}
			tok := r.Header.Get("Authorization")
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			p.mu.Lock()
			p.inflight[tok]++
			p.cancels[r] = cancel
			p.mu.Unlock()
			defer func(r *http.Request) {
				p.mu.Lock()
				p.inflight[tok]--
				delete(p.cancels, r)
				p.mu.Unlock()
			}(r)
			r = r.WithContext(ctx)
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.URL = "http://" + ln.Addr().String()
	return p
}

// cutFeed fails the change feed: polls in flight end with an error, new
// ones get 500, and no event reaches the sidecar until failEvents is
// cleared.
func (p *ksProxy) cutFeed() {
	p.failEvents.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cancel := range p.cancels {
		cancel()
	}
}

// polls is the number of change-feed polls in flight for a verifier token.
func (p *ksProxy) polls(token string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight["Bearer "+token]
}
