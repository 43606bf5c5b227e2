// Command soak holds the sidecar and the key service at their measured
// capacity for a long time (10 minutes by default) and checks that nothing
// wears: no wrong answer, no error, throughput steady, memory flat.
//
// It builds ./cmd/appkeys and ./cmd/caddy and runs each as its own process:
// the key service on SQLite in a temporary directory, and Caddy with
// appkey_auth in front of an upstream in this process. Two closed-loop
// loads run at once, each saturating what it drives:
//
//   - the sidecar (-workers connections): mostly valid keys, drawn at
//     random from more keys than the cache holds (-keys over -cache-size),
//     so hits, misses, evictions and verify calls all go on throughout;
//     the rest unknown keys (401 after one verify each -negative-ttl),
//     malformed keys and requests without a key (401 at the sidecar);
//   - the key service's POST /v1/verify directly (-ks-workers), with valid
//     keys of a second app.
//
// Meanwhile a churn loop creates a key, lets it in once, revokes it and
// times the sidecar's first 401, a few times a second, so the change feed
// and the store take writes all along.
//
// First -capacity of the same loads measures their capacity; then the
// soak runs in windows of -window, each reported with both loads'
// throughput, p99 and errors, and both processes' live heap (the lowest
// go_memstats_heap_inuse_bytes sampled in the window, which follows the heap
// after collection), resident memory and goroutines. It exits non-zero on
// any error or when either process's heap grew by more than -max-growth
// from the second window to the last. With -database the key service runs
// on PostgreSQL instead (make soak-pg starts a throwaway cluster for it).
//
//	go run ./bench/soak [-duration 10m] [-window 1m] [-workers 16] [-ks-workers 8] [-database postgres://…]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
	"github.com/appkeys/appkeys/bench/loadgen"
	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
)

type options struct {
	duration, window, capacity time.Duration
	workers, ksWorkers         int
	keys, cacheSize            int
	unknown                    int
	negativeTTL                time.Duration
	churnEvery                 time.Duration
	maxGrowth                  float64
	database                   string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "length of the soak")
	flag.DurationVar(&o.window, "window", time.Minute, "length of each reported window")
	flag.DurationVar(&o.capacity, "capacity", 30*time.Second, "length of the capacity measurement before the soak")
	flag.IntVar(&o.workers, "workers", 16, "closed-loop connections to the sidecar")
	flag.IntVar(&o.ksWorkers, "ks-workers", 8, "closed-loop connections to the key service's verify")
	flag.IntVar(&o.keys, "keys", 2000, "valid keys sent through the sidecar")
	flag.IntVar(&o.cacheSize, "cache-size", 1500, "the sidecar's cache_size (below -keys, so the cache keeps evicting)")
	flag.IntVar(&o.unknown, "unknown", 100, "distinct well-formed unknown keys sent through the sidecar")
	flag.DurationVar(&o.negativeTTL, "negative-ttl", 10*time.Second, "the sidecar's negative_ttl")
	flag.DurationVar(&o.churnEvery, "churn", 250*time.Millisecond, "pause between create-use-revoke cycles")
	flag.StringVar(&o.database, "database", "", "run the key service on this PostgreSQL URL (an empty database) instead of SQLite")
	flag.Float64Var(&o.maxGrowth, "max-growth", 0.25, "largest heap growth allowed from the second window to the last (0.25 = 25%, plus 4 MiB)")
	harness.Main("soak", func(ctx context.Context) error { return run(ctx, o) })
}

// upstreamBody is the upstream's whole answer.
var upstreamBody = []byte("hello from the app\n")

func run(ctx context.Context, o options) error {
	if o.window <= 0 || o.duration < o.window || o.workers < 1 || o.ksWorkers < 0 || o.keys < 1 {
		return errors.New("need -duration ≥ -window > 0, -workers ≥ 1 and -keys ≥ 1")
	}
	dir, err := os.MkdirTemp("", "appkeys-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	appkeysBin, err := harness.Build(ctx, dir, "./cmd/appkeys")
	if err != nil {
		return err
	}
	caddyBin, err := harness.Build(ctx, dir, "./cmd/caddy")
	if err != nil {
		return err
	}
	ports, err := harness.FreePorts(3)
	if err != nil {
		return err
	}
	ksURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	admin := fmt.Sprintf("127.0.0.1:%d", ports[1])
	siteURL := fmt.Sprintf("http://127.0.0.1:%d/", ports[2])

	// The key service.
	data := filepath.Join(dir, "data")
	args := []string{"serve", "--addr", ksURL[len("http://"):], "--data", data, "--log-level", "warn"}
	if o.database != "" {
		args = append(args, "--database", o.database)
	}
	ks, err := harness.Start("appkeys", dir, appkeysBin, nil, args...)
	if err != nil {
		return err
	}
	defer ks.Stop()
	if err := ks.WaitFor(ctx, 30*time.Second, "readiness", func() bool {
		st, err := harness.Status(ctx, ksURL+"/readyz", nil)
		return err == nil && st == http.StatusOK
	}); err != nil {
		return err
	}
	ownerToken, err := os.ReadFile(filepath.Join(data, "owner.token"))
	if err != nil {
		return err
	}
	owner, err := client.New(ksURL, strings.TrimSpace(string(ownerToken)))
	if err != nil {
		return err
	}
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "soak-sidecar", Kind: client.KindCloudFunction})
	if err != nil {
		return err
	}
	direct, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "soak-direct", Kind: client.KindDashboardApp})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "creating %d keys ...\n", o.keys+100)
	keys, err := createKeys(ctx, owner, app.ID, o.keys)
	if err != nil {
		return err
	}
	directKeys, err := createKeys(ctx, owner, direct.ID, 100)
	if err != nil {
		return err
	}
	unknown := make([]string, o.unknown)
	for i := range unknown {
		if unknown[i], err = apikey.Generate(); err != nil {
			return err
		}
	}

	// The sidecar in front of the upstream.
	var served atomic.Int64
	upstream, err := harness.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(upstreamBody)
	}))
	if err != nil {
		return err
	}
	defer upstream.Close()
	cfgPath := filepath.Join(dir, "Caddyfile")
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	log {
		level WARN
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	appkey_auth {
		key_service %s
		app %s
		verifier_token {env.APPKEYS_VERIFIER_TOKEN}
		cache_size %d
		negative_ttl %s
		failed_attempts off
	}
	reverse_proxy %s
}
`, admin, ports[2], ksURL, app.ID, o.cacheSize, o.negativeTTL, upstream.Addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	caddy, err := harness.Start("caddy", dir, caddyBin, []string{"APPKEYS_VERIFIER_TOKEN=" + app.VerifierToken}, "run", "--config", cfgPath, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	defer caddy.Stop()
	if err := caddy.WaitFor(ctx, 30*time.Second, "200 for a valid key", func() bool {
		st, err := harness.Status(ctx, siteURL, http.Header{"X-Api-Key": {keys[0]}})
		return err == nil && st == http.StatusOK
	}); err != nil {
		return err
	}

	sidecarLoad := sidecarLoad(o, siteURL, keys, unknown)
	verifyLoad := verifyLoad(o, ksURL, direct.VerifierToken, directKeys)

	// Capacity: the same two loads, measured once before the soak.
	fmt.Fprintf(os.Stderr, "measuring capacity for %s ...\n", o.capacity)
	capSidecar, capVerify, err := both(ctx, sidecarLoad, verifyLoad, 5*time.Second, o.capacity)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "capacity: sidecar %s\n          verify  %s\n", capSidecar, capVerify)

	// The soak, with the churn loop beside it.
	churnCtx, stopChurn := context.WithCancel(ctx)
	ch := &churn{owner: owner, app: app.ID, site: siteURL, every: o.churnEvery}
	churnDone := make(chan struct{})
	go func() { ch.run(churnCtx); close(churnDone) }()
	procs := []*harness.Proc{ks, caddy}
	metricsURL := []string{ksURL + "/metrics", "http://" + admin + "/metrics"}
	loadBefore := harness.Loadavg()
	start := time.Now()
	var windows []window
	for i := 0; time.Since(start) < o.duration-o.window/2; i++ {
		mem := sampleMemory(ctx, procs, metricsURL, 5*time.Second)
		s, v, err := both(ctx, sidecarLoad, verifyLoad, 0, o.window)
		w := window{sidecar: s, verify: v, mem: mem(), churn: ch.take()}
		if err != nil {
			stopChurn()
			return err
		}
		for _, p := range procs {
			if err := p.Exited(); err != nil {
				stopChurn()
				return err
			}
		}
		windows = append(windows, w)
		fmt.Fprintf(os.Stderr, "window %d: %s\n", i+1, w)
	}
	stopChurn()
	<-churnDone
	return report(os.Stdout, o, capSidecar, capVerify, windows, loadBefore, harness.Loadavg(), served.Load())
}

func createKeys(ctx context.Context, owner *client.Client, appID string, n int) ([]string, error) {
	keys := make([]string, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				k, err := owner.CreateKey(ctx, appID, client.CreateKeyRequest{Name: fmt.Sprintf("soak-%d", i), ExpiresAt: time.Now().Add(24 * time.Hour)})
				if err != nil {
					mu.Lock()
					first = firstOf(first, err)
					mu.Unlock()
					return
				}
				keys[i] = k.PlainKey
			}
		})
	}
	wg.Wait()
	return keys, first
}

func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// sidecarLoad is the sidecar's traffic: 90% valid keys, 4% unknown keys,
// 3% malformed keys, 3% no key.
func sidecarLoad(o options, url string, keys, unknown []string) loadgen.Config {
	valid := make([]http.Header, len(keys))
	for i, k := range keys {
		valid[i] = http.Header{"X-Api-Key": {k}}
	}
	bad := make([]http.Header, len(unknown))
	for i, k := range unknown {
		bad[i] = http.Header{"Authorization": {"Bearer " + k}}
	}
	last := "x" // a wrong checksum: the last character changed
	if strings.HasSuffix(keys[0], last) {
		last = "y"
	}
	malformed := []http.Header{
		{"X-Api-Key": {"cak_short"}},
		{"X-Api-Key": {keys[0][:len(keys[0])-1] + last}},
		{"Authorization": {"Bearer " + strings.Repeat("x", 300)}},
	}
	none := http.Header{}
	return loadgen.Config{
		Workers: o.workers,
		Next: func(_ int, rng *rand.Rand) loadgen.Request {
			r := loadgen.Request{Method: http.MethodGet, URL: url}
			switch n := rng.IntN(100); {
			case n < 90:
				r.Header = valid[rng.IntN(len(valid))]
			case n < 94:
				r.Header, r.Want = bad[rng.IntN(len(bad))], http.StatusUnauthorized
			case n < 97:
				r.Header, r.Want = malformed[rng.IntN(len(malformed))], http.StatusUnauthorized
			default:
				r.Header, r.Want = none, http.StatusUnauthorized
			}
			return r
		},
		Check: func(status int, body []byte) bool { return status == http.StatusOK && bytes.Equal(body, upstreamBody) },
	}
}

// verifyLoad is POST /v1/verify with valid keys, straight to the key service.
func verifyLoad(o options, ksURL, token string, keys []string) loadgen.Config {
	hdr := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	bodies := make([][]byte, len(keys))
	for i, k := range keys {
		bodies[i], _ = json.Marshal(map[string]string{"key": k})
	}
	return loadgen.Config{
		Workers: o.ksWorkers,
		Next: func(_ int, rng *rand.Rand) loadgen.Request {
			return loadgen.Request{Method: http.MethodPost, URL: ksURL + "/v1/verify", Header: hdr, Body: bodies[rng.IntN(len(bodies))]}
		},
		Check: func(status int, body []byte) bool {
			return status == http.StatusOK && bytes.Contains(body, []byte(`"valid":true`))
		},
	}
}

// both runs the two loads at once for warmup plus d.
func both(ctx context.Context, a, b loadgen.Config, warmup, d time.Duration) (loadgen.Result, loadgen.Result, error) {
	var (
		ra, rb     loadgen.Result
		erra, errb error
		wg         sync.WaitGroup
	)
	a.Warmup, a.Duration = warmup, d
	b.Warmup, b.Duration = warmup, d
	wg.Go(func() { ra, erra = loadgen.Run(ctx, a) })
	if b.Workers > 0 {
		wg.Go(func() { rb, errb = loadgen.Run(ctx, b) })
	}
	wg.Wait()
	return ra, rb, firstOf(erra, errb)
}

// memory is one window's memory readings of each process.
type memory struct {
	heapFloor  []float64 // lowest heap in use sampled in the window
	rssMax     []int64
	goroutines []float64 // at the window's last sample
}

// sampleMemory samples the processes every period until the returned
// function is called, which returns the readings.
func sampleMemory(ctx context.Context, procs []*harness.Proc, urls []string, period time.Duration) func() memory {
	m := memory{heapFloor: make([]float64, len(procs)), rssMax: make([]int64, len(procs)), goroutines: make([]float64, len(procs))}
	var mu sync.Mutex
	sample := func() {
		for i, p := range procs {
			met, err := harness.Scrape(ctx, urls[i])
			rss, rerr := harness.RSS(p.PID)
			mu.Lock()
			if err == nil {
				if h := met["go_memstats_heap_inuse_bytes"]; m.heapFloor[i] == 0 || h < m.heapFloor[i] {
					m.heapFloor[i] = h
				}
				m.goroutines[i] = met["go_goroutines"]
			}
			if rerr == nil {
				m.rssMax[i] = max(m.rssMax[i], rss)
			}
			mu.Unlock()
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() memory {
		close(stop)
		<-done
		sample()
		return m
	}
}

// churn creates a key, lets it in once through the sidecar, revokes it and
// times the sidecar's first 401, over and over.
type churn struct {
	owner *client.Client
	app   string
	site  string
	every time.Duration

	mu        sync.Mutex
	latencies []time.Duration
	errors    int
	firstErr  string
}

type churnStats struct {
	cycles   int
	p50, max time.Duration
	over1s   int
	errors   int
	firstErr string
}

func (c *churn) run(ctx context.Context) {
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	for i := 0; ctx.Err() == nil; i++ {
		took, err := c.cycle(ctx, hc, i)
		c.mu.Lock()
		if err != nil && ctx.Err() == nil {
			c.errors++
			if c.firstErr == "" {
				c.firstErr = err.Error()
			}
		} else if err == nil {
			c.latencies = append(c.latencies, took)
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(c.every):
		}
	}
}

func (c *churn) cycle(ctx context.Context, hc *http.Client, i int) (time.Duration, error) {
	k, err := c.owner.CreateKey(ctx, c.app, client.CreateKeyRequest{Name: fmt.Sprintf("churn-%d", i), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	get := func() (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.site, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("X-Api-Key", k.PlainKey)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if st, err := get(); err != nil || st != http.StatusOK {
		return 0, fmt.Errorf("new key: %d, %v", st, err)
	}
	if err := c.owner.RevokeKey(ctx, k.ID); err != nil {
		return 0, fmt.Errorf("revoke: %w", err)
	}
	revoked := time.Now()
	for {
		st, err := get()
		switch {
		case err != nil:
			return 0, err
		case st == http.StatusUnauthorized:
			return time.Since(revoked), nil
		case st != http.StatusOK:
			return 0, fmt.Errorf("revoked key: %d", st)
		case time.Since(revoked) > 5*time.Second:
			return 0, errors.New("revoked key still let in after 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// take returns the stats since the last call and starts over.
func (c *churn) take() churnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := churnStats{cycles: len(c.latencies), errors: c.errors, firstErr: c.firstErr}
	if len(c.latencies) > 0 {
		slices.Sort(c.latencies)
		s.p50, s.max = loadgen.Percentile(c.latencies, 50), c.latencies[len(c.latencies)-1]
		for _, l := range c.latencies {
			if l > time.Second {
				s.over1s++
			}
		}
	}
	c.latencies, c.errors, c.firstErr = c.latencies[:0], 0, ""
	return s
}

type window struct {
	sidecar, verify loadgen.Result
	mem             memory
	churn           churnStats
}

func (w window) String() string {
	return fmt.Sprintf("sidecar %.0f req/s p99 %v %d errors; verify %.0f req/s p99 %v %d errors; heap %s / %s; churn %d cycles, %d errors",
		w.sidecar.RPS, w.sidecar.P99, w.sidecar.Errors, w.verify.RPS, w.verify.P99, w.verify.Errors,
		mib(w.mem.heapFloor[0]), mib(w.mem.heapFloor[1]), w.churn.cycles, w.churn.errors)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func report(out io.Writer, o options, capS, capV loadgen.Result, ws []window, loadBefore, loadAfter string, served int64) error {
	store := "SQLite"
	if o.database != "" {
		store = "PostgreSQL"
	}
	fmt.Fprintf(out, "Key service on %s. ", store)
	fmt.Fprintf(out, "Soak of %s in %d windows; sidecar: %d connections, %d valid keys over cache_size %d, %d unknown keys; key service verify: %d connections; churn every %s. GOMAXPROCS %d; load average %s before, %s after.\n\n",
		o.duration, len(ws), o.workers, o.keys, o.cacheSize, o.unknown, o.ksWorkers, o.churnEvery, runtime.GOMAXPROCS(0), loadBefore, loadAfter)
	fmt.Fprintf(out, "Capacity measured first (%s): sidecar %.0f req/s (p99 %v), verify %.0f req/s (p99 %v).\n\n", o.capacity, capS.RPS, capS.P99, capV.RPS, capV.P99)
	fmt.Fprintln(out, "| window | sidecar req/s | p99 | errors | verify req/s | p99 | errors | key service heap / RSS / goroutines | Caddy heap / RSS / goroutines | revocations: cycles, p50, max, >1s | churn errors |")
	fmt.Fprintln(out, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |")
	var errs []string
	total := 0
	for i, w := range ws {
		fmt.Fprintf(out, "| %d | %.0f | %s | %d | %.0f | %s | %d | %s / %s / %.0f | %s / %s / %.0f | %d, %v, %v, %d | %d |\n", i+1,
			w.sidecar.RPS, ms(w.sidecar.P99), w.sidecar.Errors, w.verify.RPS, ms(w.verify.P99), w.verify.Errors,
			mib(w.mem.heapFloor[0]), mib(float64(w.mem.rssMax[0])), w.mem.goroutines[0],
			mib(w.mem.heapFloor[1]), mib(float64(w.mem.rssMax[1])), w.mem.goroutines[1],
			w.churn.cycles, w.churn.p50.Round(time.Millisecond), w.churn.max.Round(time.Millisecond), w.churn.over1s, w.churn.errors)
		total += w.sidecar.Requests + w.verify.Requests
		for _, e := range []struct {
			what  string
			n     int
			first string
		}{{"sidecar", w.sidecar.Errors, w.sidecar.FirstError}, {"verify", w.verify.Errors, w.verify.FirstError}, {"churn", w.churn.errors, w.churn.firstErr}} {
			if e.n > 0 {
				errs = append(errs, fmt.Sprintf("window %d: %d %s errors, first: %s", i+1, e.n, e.what, e.first))
			}
		}
	}
	fmt.Fprintln(out)
	first, last := ws[min(1, len(ws)-1)], ws[len(ws)-1]
	for i, name := range []string{"key service", "Caddy"} {
		a, b := first.mem.heapFloor[i], last.mem.heapFloor[i]
		growth := (b - a) / a
		fmt.Fprintf(out, "- %s heap: %s in window %d, %s in window %d (%+.1f%%); RSS %s → %s.\n", name, mib(a), min(2, len(ws)), mib(b), len(ws), 100*growth,
			mib(float64(first.mem.rssMax[i])), mib(float64(last.mem.rssMax[i])))
		if b > a*(1+o.maxGrowth)+4<<20 {
			errs = append(errs, fmt.Sprintf("%s heap grew from %s to %s", name, mib(a), mib(b)))
		}
	}
	lo, hi := ws[0].sidecar.RPS, ws[0].sidecar.RPS
	for _, w := range ws {
		lo, hi = min(lo, w.sidecar.RPS), max(hi, w.sidecar.RPS)
	}
	fmt.Fprintf(out, "- Sidecar throughput by window: %.0f to %.0f req/s (%.2f to %.2f of the capacity measured first).\n", lo, hi, lo/capS.RPS, hi/capS.RPS)
	fmt.Fprintf(out, "- %d requests in all, %d of them passed to the upstream (capacity run included).\n", total, served)
	if len(errs) > 0 {
		fmt.Fprintln(out, "- **Failed:**")
		for _, e := range errs {
			fmt.Fprintf(out, "  - %s\n", e)
		}
		return errors.New("the soak failed; see the report")
	}
	fmt.Fprintln(out, "- No errors; memory flat.")
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
