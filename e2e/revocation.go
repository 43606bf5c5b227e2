package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// RevocationConfig sets up a revocation-latency measurement (issue 4): a
// running key service, and a running Caddy that Load puts the sidecar into.
type RevocationConfig struct {
	// KeyService is the key service's base URL and OwnerToken an owner's
	// token in its organization.
	KeyService string
	OwnerToken string
	// Admin is the Caddy admin address every loaded Caddyfile keeps.
	Admin string
	// Load replaces the running Caddy's config with a Caddyfile.
	Load func(caddyfile string) error
	// Keys, Apps, Creators and Rolls are how many key revocations, app
	// deletions, creator deletions and key rolls to time (defaults 100,
	// 20, 20, 20).
	Keys, Apps, Creators, Rolls int
	// RollOverlap is each roll's overlap (default 1s).
	RollOverlap string
	// Bound is how long one key may take to be refused before the
	// measurement gives up (default 5s).
	Bound time.Duration
	// PollEvery is the pause between two requests of the poll loop
	// (default none: a tight loop).
	PollEvery time.Duration
	// Logf, when set, reports progress.
	Logf func(format string, args ...any)
	// ChangeThrough, when set, is another replica of the key service (on
	// the same database) that the revokes and deletions are made through,
	// while the sidecar follows KeyService's feed: the time a change takes
	// to cross from one replica to another.
	ChangeThrough string
	// BusyWriters are key-service replicas that each take a steady stream
	// of unrelated writes (a key created and revoked in an app of its own)
	// while the changes are timed, so that every replica numbers events.
	BusyWriters []string
}

// Latencies are measured times, one per revocation.
type Latencies []time.Duration

// Quantile is the nearest-rank q-quantile (0 < q <= 1).
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*q)) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Max is the largest latency.
func (l Latencies) Max() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return slices.Max(l)
}

func (l Latencies) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(l), ms(l.Quantile(0.5)), ms(l.Quantile(0.99)), ms(l.Max()))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// RevocationReport is the time from the 204 of a revoke or delete to the
// first 401 at the sidecar, for each of the three ways a key stops working,
// and from a rolled key's overlap's end to its first 401.
type RevocationReport struct {
	KeyRevoked, AppDeleted, CreatorDeleted, OverlapEnded Latencies
}

// revocationRun is one measurement's state.
type revocationRun struct {
	cfg   RevocationConfig
	owner *client.Client
	http  *http.Client
	keys  atomic.Int64 // key names are unique per app
}

// MeasureRevocations creates an app with a sidecar site and Apps more apps
// each with its own site (cache_ttl 10m everywhere, so only the change feed
// can make a cached key fail fast), then for each case caches a key at the
// sidecar (a 200), revokes it or deletes its app or its creator, and polls
// the sidecar with the key until it answers 401.
func MeasureRevocations(ctx context.Context, cfg RevocationConfig) (rep *RevocationReport, err error) {
	if cfg.Keys == 0 {
		cfg.Keys = 100
	}
	if cfg.Apps == 0 {
		cfg.Apps = 20
	}
	if cfg.Creators == 0 {
		cfg.Creators = 20
	}
	if cfg.Rolls == 0 {
		cfg.Rolls = 20
	}
	if cfg.RollOverlap == "" {
		cfg.RollOverlap = "1s"
	}
	if cfg.Bound == 0 {
		cfg.Bound = 5 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	owner, err := client.New(cfg.KeyService, cfg.OwnerToken)
	if err != nil {
		return nil, err
	}
	r := &revocationRun{cfg: cfg, owner: owner, http: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute},
		Timeout:   10 * time.Second,
	}}
	defer r.http.CloseIdleConnections()

	upstream, stop, err := serveOK()
	if err != nil {
		return nil, err
	}
	defer stop()

	// One site for the revocation and creator cases, one per deleted app.
	sites := make([]Site, 1+cfg.Apps)
	for i := range sites {
		app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: fmt.Sprintf("revocation-%d", i), Kind: client.KindCloudFunction})
		if err != nil {
			return nil, fmt.Errorf("create app: %w", err)
		}
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		sites[i] = Site{Port: port, App: app.ID, Token: app.VerifierToken, Auth: []string{"cache_ttl 10m"}}
	}
	if err := cfg.Load(Caddyfile(cfg.Admin, cfg.KeyService, upstream, sites...)); err != nil {
		return nil, fmt.Errorf("load the sidecar: %w", err)
	}
	// A first revocation per site proves its feed subscriber is up, so the
	// figures below time revocations, not start-up.
	for _, s := range sites {
		k, err := r.cachedKey(ctx, owner, s)
		if err != nil {
			return nil, err
		}
		if _, err := r.timeRefusal(ctx, s, k.PlainKey, func() error { return owner.RevokeKey(ctx, k.ID) }); err != nil {
			return nil, fmt.Errorf("warm-up of %s: %w", s.App, err)
		}
	}
	main := sites[0]
	rep = &RevocationReport{}
	changer := owner
	if cfg.ChangeThrough != "" {
		if changer, err = client.New(cfg.ChangeThrough, cfg.OwnerToken); err != nil {
			return nil, err
		}
	}
	stopBusy, err := busyWriters(ctx, cfg, owner)
	if err != nil {
		return nil, err
	}
	defer func() {
		if berr := stopBusy(); berr != nil && err == nil {
			rep, err = nil, berr
		}
	}()

	cfg.Logf("timing %d key revocations", cfg.Keys)
	before, err := r.feedWork(ctx, main.App)
	if err != nil {
		return nil, err
	}
	for range cfg.Keys {
		k, err := r.cachedKey(ctx, owner, main)
		if err != nil {
			return nil, err
		}
		d, err := r.timeRefusal(ctx, main, k.PlainKey, func() error { return changer.RevokeKey(ctx, k.ID) })
		if err != nil {
			return nil, fmt.Errorf("key revocation: %w", err)
		}
		rep.KeyRevoked = append(rep.KeyRevoked, d)
	}
	// Each key cost the one verify call that cached it; had the sidecar
	// asked again while polling, the figures would time a verify, not the
	// change feed.
	after, err := r.feedWork(ctx, main.App)
	if err != nil {
		return nil, err
	}
	if calls, applied := after.calls-before.calls, after.applied-before.applied; calls != float64(cfg.Keys) || applied != float64(cfg.Keys) {
		return nil, fmt.Errorf("%d key revocations took %v verify calls and %v applied feed events; want %d of each", cfg.Keys, calls, applied, cfg.Keys)
	}

	cfg.Logf("timing %d app deletions", cfg.Apps)
	for _, s := range sites[1:] {
		k, err := r.cachedKey(ctx, owner, s)
		if err != nil {
			return nil, err
		}
		d, err := r.timeRefusal(ctx, s, k.PlainKey, func() error { return changer.DeleteApp(ctx, s.App) })
		if err != nil {
			return nil, fmt.Errorf("app deletion: %w", err)
		}
		rep.AppDeleted = append(rep.AppDeleted, d)
	}

	cfg.Logf("timing %d creator deletions", cfg.Creators)
	for i := range cfg.Creators {
		u, err := owner.CreateUser(ctx, client.CreateUserRequest{Email: fmt.Sprintf("creator-%d-%d@example.com", i, time.Now().UnixNano()), Role: client.RoleMember})
		if err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
		creator, err := client.New(cfg.KeyService, u.Token)
		if err != nil {
			return nil, err
		}
		k, err := r.cachedKey(ctx, creator, main)
		if err != nil {
			return nil, err
		}
		d, err := r.timeRefusal(ctx, main, k.PlainKey, func() error { return changer.DeleteUser(ctx, u.ID) })
		if err != nil {
			return nil, fmt.Errorf("creator deletion: %w", err)
		}
		rep.CreatorDeleted = append(rep.CreatorDeleted, d)
	}

	cfg.Logf("timing %d key rolls with a %s overlap", cfg.Rolls, cfg.RollOverlap)
	if rep.OverlapEnded, err = r.timeRollovers(ctx, main, cfg.Rolls, cfg.RollOverlap); err != nil {
		return nil, fmt.Errorf("key roll: %w", err)
	}
	return rep, nil
}

// serveOK runs the app behind the sidecar on 127.0.0.1: it answers "ok".
func serveOK() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// busyWriters starts one writer per cfg.BusyWriters replica, each creating
// and revoking keys of an app of its own until the returned function stops
// them and reports the first error any met.
func busyWriters(ctx context.Context, cfg RevocationConfig, owner *client.Client) (stop func() error, err error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		done  = make(chan struct{})
	)
	for i, url := range cfg.BusyWriters {
		app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: fmt.Sprintf("busy-%d", i), Kind: client.KindCloudFunction})
		if err != nil {
			close(done)
			return nil, fmt.Errorf("create a busy app: %w", err)
		}
		c, err := client.New(url, cfg.OwnerToken)
		if err != nil {
			close(done)
			return nil, err
		}
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				k, err := c.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: fmt.Sprintf("busy-%d", n), ExpiresAt: time.Now().Add(time.Hour)})
				if err == nil {
					err = c.RevokeKey(ctx, k.ID)
				}
				if err != nil {
					mu.Lock()
					first = errors.Join(first, fmt.Errorf("busy writer on %s: %w", url, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	return func() error {
		close(done)
		wg.Wait()
		return first
	}, nil
}

type feedCounts struct{ calls, applied float64 }

// feedWork reads the sidecar's verify calls and applied revocations for app
// from Caddy's admin /metrics.
func (r *revocationRun) feedWork(ctx context.Context, app string) (feedCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.cfg.Admin+"/metrics", nil)
	if err != nil {
		return feedCounts{}, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return feedCounts{}, fmt.Errorf("sidecar metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return feedCounts{}, fmt.Errorf("sidecar metrics: %d %v", resp.StatusCode, err)
	}
	text := string(b)
	return feedCounts{
		calls:   metric(text, "appkey_auth_keyservice_requests_total", "app", app),
		applied: metric(text, "appkey_auth_revocations_applied_total", "app", app),
	}, nil
}

// cachedKey creates a key for s's app as c and has the sidecar cache it.
func (r *revocationRun) cachedKey(ctx context.Context, c *client.Client, s Site) (*client.CreatedKey, error) {
	k, err := c.CreateKey(ctx, s.App, client.CreateKeyRequest{Name: fmt.Sprintf("revocation-%d", r.keys.Add(1)), ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	status, err := r.get(ctx, s, k.PlainKey)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("a new key of %s: sidecar answered %d, want 200", s.App, status)
	}
	return k, nil
}

// timeRefusal runs change and returns the time from its success to the
// sidecar's first 401 for key.
func (r *revocationRun) timeRefusal(ctx context.Context, s Site, key string, change func() error) (time.Duration, error) {
	if err := change(); err != nil {
		return 0, err
	}
	start := time.Now()
	deadline := start.Add(r.cfg.Bound)
	for {
		status, err := r.get(ctx, s, key)
		if err != nil {
			return 0, err
		}
		switch status {
		case http.StatusUnauthorized:
			return time.Since(start), nil
		case http.StatusOK:
		default:
			return 0, fmt.Errorf("sidecar answered %d while the key was being refused", status)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("key still accepted %s after the change", r.cfg.Bound)
		}
		if r.cfg.PollEvery > 0 {
			time.Sleep(r.cfg.PollEvery)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

func (r *revocationRun) get(ctx context.Context, s Site, key string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Key", key)
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("sidecar: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// ErrTooSlow is returned by Check when a p99 misses the promise.
var ErrTooSlow = errors.New("revocation p99 at or over the bound")

// Check reports whether every case's p99 is under bound.
func (rep *RevocationReport) Check(bound time.Duration) error {
	var errs []error
	for _, c := range rep.Cases() {
		if p := c.Latencies.Quantile(0.99); p >= bound {
			errs = append(errs, fmt.Errorf("%w: %s p99 %s (bound %s)", ErrTooSlow, c.Name, ms(p), bound))
		}
	}
	return errors.Join(errs...)
}

// RevocationCase is one named row of a report.
type RevocationCase struct {
	Name      string
	Latencies Latencies
}

// Cases lists the report's rows in order.
func (rep *RevocationReport) Cases() []RevocationCase {
	return []RevocationCase{
		{"key revoked (DELETE /v1/keys/{id})", rep.KeyRevoked},
		{"app deleted (DELETE /v1/apps/{id})", rep.AppDeleted},
		{"creator deleted (DELETE /v1/users/{id})", rep.CreatorDeleted},
		{"old key after a roll's overlap (POST /v1/keys/{id}/roll), from its new expires_at", rep.OverlapEnded},
	}
}
