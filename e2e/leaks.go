package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/leaktest"
)

// LeakBatchConfig sets up a measurement of issue 15's promise: a leak
// report of many matches is answered, and its live keys refused by a real
// sidecar, within a second. The key service must trust Signer's public key
// (its --leak-keys-url or --leak-keys-file).
type LeakBatchConfig struct {
	KeyService string
	OwnerToken string
	// Admin is the Caddy admin address every loaded Caddyfile keeps.
	Admin string
	// Load replaces the running Caddy's config with a Caddyfile.
	Load func(caddyfile string) error
	// Signer stands in for GitHub.
	Signer *leaktest.Signer
	// Matches is the report's size (default 1,000), Live how many of them
	// are live keys cached at the sidecar (default all); the rest are
	// other providers' tokens.
	Matches, Live int
	// Bound is how long the last key may take to be refused before the
	// measurement gives up (default 10s).
	Bound time.Duration
	// Logf, when set, reports progress.
	Logf func(format string, args ...any)
}

// LeakBatchReport is what one report cost. Both times run from the moment
// the report is sent.
type LeakBatchReport struct {
	Matches, Live, TruePositives int
	// Answered is when the report's answer arrived; AllRefused, when the
	// sidecar had answered 401 for every live key.
	Answered, AllRefused time.Duration
}

// pollers is how many clients poll the sidecar at once for refusals.
const pollers = 8

// MeasureLeakBatch creates Live keys of one app, has its sidecar cache
// each (cache_ttl 10m, so only the change feed can refuse them fast),
// then sends one signed report naming them among Matches, and polls the
// sidecar with every key until each answers 401.
func MeasureLeakBatch(ctx context.Context, cfg LeakBatchConfig) (*LeakBatchReport, error) {
	if cfg.Matches == 0 {
		cfg.Matches = 1000
	}
	if cfg.Live == 0 || cfg.Live > cfg.Matches {
		cfg.Live = cfg.Matches
	}
	if cfg.Bound == 0 {
		cfg.Bound = 10 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	owner, err := client.New(cfg.KeyService, cfg.OwnerToken)
	if err != nil {
		return nil, err
	}
	r := &revocationRun{cfg: RevocationConfig{Bound: cfg.Bound}, owner: owner, http: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 2 * pollers, IdleConnTimeout: time.Minute},
		// A thousand matches under the race detector take many seconds.
		Timeout: time.Minute,
	}}
	defer r.http.CloseIdleConnections()
	upstream, stop, err := serveOK()
	if err != nil {
		return nil, err
	}
	defer stop()
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: fmt.Sprintf("leaks-%d", time.Now().UnixNano()), Kind: client.KindCloudFunction})
	if err != nil {
		return nil, fmt.Errorf("create app: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	site := Site{Port: port, App: app.ID, Token: app.VerifierToken, Auth: []string{"cache_ttl 10m"}}
	if err := cfg.Load(Caddyfile(cfg.Admin, cfg.KeyService, upstream, site)); err != nil {
		return nil, fmt.Errorf("load the sidecar: %w", err)
	}
	// A first revocation proves the feed subscriber is up.
	warm, err := r.cachedKey(ctx, owner, site)
	if err != nil {
		return nil, err
	}
	if _, err := r.timeRefusal(ctx, site, warm.PlainKey, func() error { return owner.RevokeKey(ctx, warm.ID) }); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	cfg.Logf("creating and caching %d keys", cfg.Live)
	keys := make([]string, cfg.Live)
	if err := parallel(cfg.Live, func(i int) error {
		k, err := r.cachedKey(ctx, owner, site)
		if err == nil {
			keys[i] = k.PlainKey
		}
		return err
	}); err != nil {
		return nil, err
	}
	tokens := append([]string{}, keys...)
	for i := len(tokens); i < cfg.Matches; i++ {
		tokens = append(tokens, fmt.Sprintf("ghp_notours%029d", i))
	}
	body := leaktest.Body(tokens...)

	cfg.Logf("reporting %d matches (%d bytes)", len(tokens), len(body))
	start := time.Now()
	status, answer, err := leaktest.Post(ctx, r.http, cfg.KeyService+"/v1/leaks/github", cfg.Signer, body)
	rep := &LeakBatchReport{Matches: cfg.Matches, Live: cfg.Live, Answered: time.Since(start)}
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("the report was answered %d: %.300s", status, answer)
	}
	var fb []leaktest.Feedback
	if err := json.Unmarshal(answer, &fb); err != nil || len(fb) != len(tokens) {
		return nil, fmt.Errorf("the answer holds %d entries (%v); want %d", len(fb), err, len(tokens))
	}
	for _, f := range fb {
		if f.Label == "true_positive" {
			rep.TruePositives++
		}
	}
	var mu sync.Mutex
	err = parallel(len(keys), func(i int) error {
		for {
			status, err := r.get(ctx, site, keys[i])
			if err != nil {
				return err
			}
			if status == http.StatusUnauthorized {
				mu.Lock()
				rep.AllRefused = max(rep.AllRefused, time.Since(start))
				mu.Unlock()
				return nil
			}
			if status != http.StatusOK {
				return fmt.Errorf("sidecar answered %d while the key was being refused", status)
			}
			if time.Since(start) > cfg.Bound {
				return fmt.Errorf("a reported key still accepted %s after the report", cfg.Bound)
			}
		}
	})
	return rep, err
}

// parallel runs fn(0) … fn(n-1) on pollers goroutines; the first error
// stops the rest from starting.
func parallel(n int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || i >= n
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}
