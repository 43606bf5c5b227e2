package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
)

// window is what one reporting window saw: the requests sent in it, by
// outcome, and what the key service bore meanwhile.
type window struct {
	sent, ok, unavailable, other, timeouts, shed int
	lat                                          []time.Duration // of every request sent in it; a timeout counts as -client-timeout
	calls                                        int64           // verify calls the key service received
	peak                                         int64           // most verify calls in flight at once
	ksCPU, caddyCPU, harnessCPU                  time.Duration
}

// phase is one cold start with one max_verify_calls.
type phase struct {
	cap     string
	windows []window
	peak    int64 // over the whole phase
	// The key service's own view of its verifies, from its histogram: how
	// many it served, their mean time, and how many took over 1 s.
	served, slowServed float64
	servedMean         time.Duration
}

// countingProxy forwards to the key service and counts its verify calls,
// and those in flight at once, as the key service receives them.
type countingProxy struct {
	rp                  *httputil.ReverseProxy
	calls, active, peak atomic.Int64
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/verify" {
		p.calls.Add(1)
		n := p.active.Add(1)
		defer p.active.Add(-1)
		for m := p.peak.Load(); n > m && !p.peak.CompareAndSwap(m, n); m = p.peak.Load() {
		}
	}
	p.rp.ServeHTTP(w, r)
}

func newCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        8192,
		MaxIdleConnsPerHost: 8192,
		IdleConnTimeout:     90 * time.Second,
	}
	// A request its client gave up on ends here too: not worth a log line.
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	return &countingProxy{rp: rp}, nil
}

func (p *phase) run(ctx context.Context, o options, dir, data, ksBin, caddyBin string, s seed) error {
	ports, err := harness.FreePorts(3)
	if err != nil {
		return err
	}
	ksAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	// What is measured is a cold sidecar, not a cold disk: without this the
	// first phase alone would wait for the database's pages.
	if err := readAll(data); err != nil {
		return err
	}
	ks, err := harness.Start("appkeys-"+p.cap, dir, ksBin, nil, "serve", "--addr", ksAddr, "--data", data, "--log-level", "warn")
	if err != nil {
		return err
	}
	defer ks.Stop()
	if err := ks.WaitFor(ctx, 60*time.Second, "readiness", func() bool {
		st, err := harness.Status(ctx, "http://"+ksAddr+"/readyz", nil)
		return err == nil && st == http.StatusOK
	}); err != nil {
		return err
	}
	proxy, err := newCountingProxy("http://" + ksAddr)
	if err != nil {
		return err
	}
	psrv, err := harness.Serve(proxy)
	if err != nil {
		return err
	}
	defer psrv.Close()

	admin, site := fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	cfgPath := filepath.Join(dir, "Caddyfile."+p.cap)
	if err := os.WriteFile(cfgPath, []byte(caddyfile(admin, site, "http://"+psrv.Addr, s.app, p.cap)), 0o600); err != nil {
		return err
	}
	caddy, err := harness.Start("caddy-"+p.cap, dir, caddyBin, []string{"APPKEYS_VERIFIER_TOKEN=" + s.token},
		"run", "--config", cfgPath, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	defer caddy.Stop()
	// Ready when a request without a key is refused: no key is cached by
	// it, so the cache is as cold as a restart leaves it.
	if err := caddy.WaitFor(ctx, 60*time.Second, "readiness", func() bool {
		st, err := harness.Status(ctx, "http://"+site+"/", nil)
		return err == nil && st == http.StatusUnauthorized
	}); err != nil {
		return err
	}
	if err := p.load(ctx, o, "http://"+site+"/", s.keys, proxy, ks.PID, caddy.PID); err != nil {
		return err
	}
	m, err := harness.Scrape(ctx, "http://"+ksAddr+"/metrics")
	if err != nil {
		return err
	}
	const series = `appkeys_http_request_duration_seconds_%s{route="POST /v1/verify"%s}`
	p.served = m[fmt.Sprintf(series, "count", "")]
	p.slowServed = p.served - m[fmt.Sprintf(series, "bucket", `,le="1"`)]
	if p.served > 0 {
		p.servedMean = time.Duration(m[fmt.Sprintf(series, "sum", "")] / p.served * float64(time.Second))
	}
	return nil
}

func caddyfile(admin, site, keyService, app, limit string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	log {
		level ERROR
	}
}

http://%s {
	appkey_auth {
		key_service %s
		app %s
		verifier_token {env.APPKEYS_VERIFIER_TOKEN}
		failed_attempts off
		max_verify_calls %s
	}
	respond "ok"
}
`, admin, site, keyService, app, limit)
}

// load sends the open-loop traffic for o.duration and fills p.windows.
func (p *phase) load(ctx context.Context, o options, target string, keys []string, proxy *countingProxy, ksPID, caddyPID int) error {
	n := int((o.duration + o.window - 1) / o.window)
	p.windows = make([]window, n)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        o.outstanding,
		MaxIdleConnsPerHost: o.outstanding,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.clientTimeout}

	// The first pass sends every key once, in a shuffled order; then keys
	// are drawn at random.
	order := rand.Perm(len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.outstanding)
	start := time.Now()
	end := start.Add(o.duration)

	// The sampler closes each window's key-service figures at its end.
	sampled := make(chan error, 1)
	go func() {
		ks0, _ := harness.CPUPrecise(ksPID)
		c0, _ := harness.CPUPrecise(caddyPID)
		h0, _ := harness.CPUPrecise(os.Getpid())
		calls0 := proxy.calls.Load()
		for i := range n {
			t := time.NewTimer(time.Until(start.Add(time.Duration(i+1) * o.window)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				sampled <- ctx.Err()
				return
			}
			ks1, err1 := harness.CPUPrecise(ksPID)
			c1, err2 := harness.CPUPrecise(caddyPID)
			h1, err3 := harness.CPUPrecise(os.Getpid())
			if err := errors.Join(err1, err2, err3); err != nil {
				sampled <- err
				return
			}
			calls1 := proxy.calls.Load()
			peak := proxy.peak.Swap(proxy.active.Load())
			mu.Lock()
			w := &p.windows[i]
			w.calls, w.peak, w.ksCPU, w.caddyCPU, w.harnessCPU = calls1-calls0, peak, ks1-ks0, c1-c0, h1-h0
			mu.Unlock()
			p.peak = max(p.peak, peak)
			ks0, c0, h0, calls0 = ks1, c1, h1, calls1
		}
		sampled <- nil
	}()

	interval := time.Second / time.Duration(o.rate)
	sent := 0
	for now := time.Now(); now.Before(end); now = time.Now() {
		// Send what is due by now: the schedule, not the answers, sets
		// the pace.
		due := int(now.Sub(start) / interval)
		for ; sent < due; sent++ {
			wi := min(int(now.Sub(start)/o.window), n-1)
			var key string
			if sent < len(order) {
				key = keys[order[sent]]
			} else {
				key = keys[rand.IntN(len(keys))]
			}
			select {
			case sem <- struct{}{}:
			default:
				mu.Lock()
				p.windows[wi].shed++
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				status, lat := get(ctx, client, target, key)
				mu.Lock()
				defer mu.Unlock()
				w := &p.windows[wi]
				w.sent++
				switch {
				case status == 0:
					w.timeouts++
					lat = o.clientTimeout
				case status == http.StatusOK:
					w.ok++
				case status == http.StatusServiceUnavailable:
					w.unavailable++
				default:
					w.other++
				}
				w.lat = append(w.lat, lat)
			}()
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	err := <-sampled
	wg.Wait()
	return err
}

// get sends one request and returns its status (0 when no answer came
// within the client's timeout) and how long it took.
func get(ctx context.Context, client *http.Client, target, key string) (int, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, 0
	}
	req.Header.Set("X-API-Key", key)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// readAll reads every file of dir once, which leaves them in the page
// cache.
func readAll(dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return err
	})
}
