// Command sidecar measures what the appkey_auth module costs in front of an
// app, against plain reverse_proxy and against Caddy's forward_auth, side by
// side in one run.
//
// It builds ./cmd/caddy once into a temporary directory and runs it as its
// own process with one config of three sites on three loopback ports, all
// proxying to the same upstream (a net/http handler in this process that
// answers a fixed 200):
//
//   - plain: reverse_proxy alone;
//   - appkey_auth: the module, then reverse_proxy; every request carries one
//     valid key, whose answer is cached before the rounds (cache hits);
//   - forward_auth: Caddy's forward_auth to an auth endpoint in this process,
//     then reverse_proxy. The endpoint is what a user without the module
//     would write: it reads X-API-Key from the GET forward_auth sends and
//     asks the key service (POST /v1/verify with the app's verifier token)
//     for every request, answering 200 or 401. It has no cache;
//   - appkey_auth with a rate limit: the appkey_auth site again, with a
//     second key that carries a rate limit (1,000,000 a second, high
//     enough never to refuse), so every request also takes a token from
//     the key's bucket.
//
// The real key service (internal/keyserver, SQLite in a temporary directory)
// runs in this process; the app and its key are created through its HTTP
// API. The rounds are interleaved and their order rotates each round, so
// every target sees the same machine; bench/loadgen drives -workers
// closed-loop connections over loopback. Besides throughput and latency it
// reads the Caddy process's CPU time per request from /proc, a figure that
// other load on a shared machine moves far less.
//
//	go run ./bench/sidecar [-rounds 5] [-duration 4s] [-workers 16] [-pprof file]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
	"github.com/appkeys/appkeys/bench/loadgen"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
)

type options struct {
	harness.RoundFlags
	pprof    string
	pprofFor time.Duration
	caddyBin string
}

func main() {
	var o options
	o.Flags()
	flag.StringVar(&o.pprof, "pprof", "", "after the rounds, load the appkey_auth site once more and write the Caddy process's CPU profile (from its admin /debug/pprof) here; then the plain site's, to this name + \".plain\"")
	flag.DurationVar(&o.pprofFor, "pprof-duration", 10*time.Second, "length of the profiled round")
	flag.StringVar(&o.caddyBin, "caddy", "", "use this Caddy binary instead of building ./cmd/caddy")
	harness.Main("sidecar benchmark", func(ctx context.Context) error { return run(ctx, o) })
}

const keyHeader = "X-API-Key"

// target is one site of the Caddy config.
type target struct {
	name string
	url  string
	hdr  http.Header
}

// sample is one round of one target.
type sample struct {
	res      loadgen.Result
	caddyCPU time.Duration // the Caddy process's CPU time in the round (warm-up included)
	caddyN   int           // requests Caddy served in that time (warm-up included)
}

func (s sample) caddyCPUPerRequest() time.Duration {
	if s.caddyN == 0 {
		return 0
	}
	return s.caddyCPU / time.Duration(s.caddyN)
}

func run(ctx context.Context, o options) error {
	if o.Rounds < 1 || o.Workers < 1 || o.Duration <= 0 {
		return errors.New("rounds, workers and duration must be positive")
	}
	dir, err := os.MkdirTemp("", "appkeys-bench-sidecar-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin := o.caddyBin
	if bin == "" {
		if bin, err = harness.Build(ctx, dir, "./cmd/caddy"); err != nil {
			return err
		}
	}

	// The key service, with one app and one key made through its API.
	ks, err := keyserver.Start(ctx, keyserver.Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data")})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ks.Close(cctx)
	}()
	owner, err := client.New(ks.URL, ks.Bootstrap.OwnerToken)
	if err != nil {
		return err
	}
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "bench-sidecar", Kind: client.KindCloudFunction})
	if err != nil {
		return fmt.Errorf("create app: %w", err)
	}
	key, err := owner.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: "bench", ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	limited, err := owner.CreateKey(ctx, app.ID, client.CreateKeyRequest{Name: "bench-limited", ExpiresAt: time.Now().Add(24 * time.Hour),
		RateLimit: &client.RateLimit{Requests: 1_000_000, Per: "1s"}})
	if err != nil {
		return fmt.Errorf("create limited key: %w", err)
	}

	upstream, err := harness.Serve(http.HandlerFunc(upstreamHandler))
	if err != nil {
		return err
	}
	defer upstream.Close()
	auth, err := newAuthEndpoint(ks.URL, app.VerifierToken, o.Workers)
	if err != nil {
		return err
	}
	authSrv, err := harness.Serve(auth)
	if err != nil {
		return err
	}
	defer authSrv.Close()

	ports, err := harness.FreePorts(4)
	if err != nil {
		return err
	}
	admin := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cfg := caddyfile(admin, ports[1:], upstream.Addr, authSrv.Addr, ks.URL, app.ID)
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	caddy, err := harness.Start("caddy", dir, bin, []string{"APPKEYS_VERIFIER_TOKEN=" + app.VerifierToken},
		"run", "--config", cfgPath, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	defer caddy.Stop()

	hdr := http.Header{keyHeader: {key.PlainKey}}
	targets := []target{
		{"plain reverse_proxy", fmt.Sprintf("http://127.0.0.1:%d/", ports[1]), hdr},
		{"appkey_auth (cache hit) + reverse_proxy", fmt.Sprintf("http://127.0.0.1:%d/", ports[2]), hdr},
		{"forward_auth to the key service + reverse_proxy", fmt.Sprintf("http://127.0.0.1:%d/", ports[3]), hdr},
		{"appkey_auth (cache hit, rate limit enforced) + reverse_proxy", fmt.Sprintf("http://127.0.0.1:%d/", ports[2]), http.Header{keyHeader: {limited.PlainKey}}},
	}
	if err := waitReady(ctx, targets, caddy); err != nil {
		return err
	}
	// The key is now cached by appkey_auth: the readiness request above
	// was its one miss. A request without a key must still be refused.
	if st, err := harness.Status(ctx, targets[1].url, nil); err != nil || st != http.StatusUnauthorized {
		return fmt.Errorf("appkey_auth site without a key answered %d, %v; want 401", st, err)
	}
	if st, err := harness.Status(ctx, targets[2].url, nil); err != nil || st != http.StatusUnauthorized {
		return fmt.Errorf("forward_auth site without a key answered %d, %v; want 401", st, err)
	}
	metricsURL := "http://" + admin + "/metrics"
	before, err := harness.Scrape(ctx, metricsURL)
	if err != nil {
		return err
	}
	ksBefore := auth.calls.Load()

	// One uncounted pass over every target first: a fresh Caddy's first
	// seconds (connection pools, lazily built state) would otherwise fall
	// on whichever target comes first.
	for _, t := range targets {
		wo := o
		wo.Warmup, wo.Duration = 0, o.Warmup+time.Second
		if _, err := measure(ctx, wo, t, caddy.PID); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	loadBefore := harness.Loadavg()
	results := make([][]sample, len(targets))
	runtime.GC()
	for round := range o.Rounds {
		for j := range targets {
			i := (round + j) % len(targets) // rotate the order: no target always follows another
			s, err := measure(ctx, o, targets[i], caddy.PID)
			if err != nil {
				return fmt.Errorf("%s: %w", targets[i].name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d/%d %-48s %v; Caddy CPU %v/req\n", round+1, o.Rounds, targets[i].name, s.res, s.caddyCPUPerRequest())
			if s.res.Errors > 0 {
				fmt.Fprintf(os.Stderr, "  first error: %s\n", s.res.FirstError)
			}
			results[i] = append(results[i], s)
		}
	}
	loadAfter := harness.Loadavg()
	after, err := harness.Scrape(ctx, metricsURL)
	if err != nil {
		return err
	}

	if o.pprof != "" {
		// The plain site too, so that the two profiles can be compared
		// (go tool pprof -diff_base FILE.plain FILE).
		if err := profile(ctx, o, targets[1], admin, caddy.PID, o.pprof); err != nil {
			return err
		}
		if err := profile(ctx, o, targets[0], admin, caddy.PID, o.pprof+".plain"); err != nil {
			return err
		}
	}

	// The module's counters, read from Caddy's admin /metrics around the rounds.
	delta := func(name string) float64 { return after[name] - before[name] }
	report(os.Stdout, o, targets, results, cacheCounts{
		hits:     delta("appkey_auth_cache_hits_total"),
		misses:   delta("appkey_auth_cache_misses_total"),
		ksCalls:  delta("appkey_auth_keyservice_requests_total"),
		authRuns: auth.calls.Load() - ksBefore,
	}, loadBefore, loadAfter)
	return nil
}

// measure runs one round against t and reads Caddy's CPU time around it.
func measure(ctx context.Context, o options, t target, pid int) (sample, error) {
	cfg := loadgen.Config{
		Workers: o.Workers, Duration: o.Duration, Warmup: o.Warmup,
		Next: func(int, *rand.Rand) loadgen.Request {
			return loadgen.Request{Method: http.MethodGet, URL: t.url, Header: t.hdr}
		},
		Check: func(status int, body []byte) bool { return status == http.StatusOK && bytes.Equal(body, upstreamBody) },
	}
	served0 := upstreamServed.Load()
	cpu0, err := harness.CPU(pid)
	if err != nil {
		return sample{}, err
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return sample{}, err
	}
	cpu1, err := harness.CPU(pid)
	if err != nil {
		return sample{}, err
	}
	return sample{res: res, caddyCPU: cpu1 - cpu0, caddyN: int(upstreamServed.Load() - served0)}, nil
}

// profile loads t's site while Caddy's own CPU profiler runs, and writes
// the profile to file.
func profile(ctx context.Context, o options, t target, admin string, pid int, file string) error {
	secs := max(1, int(o.pprofFor.Seconds()))
	type got struct {
		body []byte
		err  error
	}
	done := make(chan got, 1)
	go func() {
		u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- got{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("pprof: status %d: %.200s", resp.StatusCode, b)
		}
		done <- got{b, err}
	}()
	po := o
	po.Warmup, po.Duration = 0, time.Duration(secs)*time.Second
	s, err := measure(ctx, po, t, pid)
	if err != nil {
		return err
	}
	g := <-done
	if g.err != nil {
		return g.err
	}
	if err := os.WriteFile(file, g.body, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "profiled round of %s (not counted): %v; Caddy CPU %v/req; profile in %s (go tool pprof -top %s)\n",
		t.name, s.res, s.caddyCPUPerRequest(), file, file)
	return nil
}

// upstreamBody is the upstream's whole answer.
var upstreamBody = []byte("hello from the app\n")

var upstreamServed atomic.Int64

func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	upstreamServed.Add(1)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(upstreamBody)))
	w.Write(upstreamBody)
}

// authEndpoint is the forward_auth target a user without appkey_auth would
// write: every request asks the key service, no cache.
type authEndpoint struct {
	ks    *client.Client
	calls atomic.Int64
}

func newAuthEndpoint(keyService, verifierToken string, workers int) (*authEndpoint, error) {
	// A keep-alive transport sized for the load, as a careful user would
	// set it (Go's default keeps 2 idle connections per host).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 4*workers, 4*workers
	c, err := client.New(keyService, verifierToken, client.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		return nil, err
	}
	return &authEndpoint{ks: c}, nil
}

func (a *authEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get(keyHeader)
	if key == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="appkeys"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.calls.Add(1)
	v, err := a.ks.Verify(r.Context(), key)
	switch {
	case err != nil:
		w.WriteHeader(http.StatusServiceUnavailable)
	case !v.Valid:
		w.Header().Set("WWW-Authenticate", `Bearer realm="appkeys", error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	default:
		w.Header().Set("X-Appkeys-Key-Id", v.KeyID)
		w.WriteHeader(http.StatusOK)
	}
}

// caddyfile is one Caddy with three sites, one per target, on loopback.
func caddyfile(admin string, ports []int, upstream, auth, keyService, app string) string {
	return fmt.Sprintf(`{
	admin %[1]s
	auto_https off
	persist_config off
	log {
		level WARN
	}
}

:%[2]d {
	bind 127.0.0.1
	reverse_proxy %[5]s
}

:%[3]d {
	bind 127.0.0.1
	appkey_auth {
		key_service %[7]s
		app %[8]s
		verifier_token {env.APPKEYS_VERIFIER_TOKEN}
	}
	reverse_proxy %[5]s
}

:%[4]d {
	bind 127.0.0.1
	forward_auth %[6]s {
		uri /auth
		copy_headers X-Appkeys-Key-Id
	}
	reverse_proxy %[5]s
}
`, admin, ports[0], ports[1], ports[2], upstream, auth, keyService, app)
}

// waitReady waits until every site answers 200 with the key.
func waitReady(ctx context.Context, targets []target, p *harness.Proc) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, t := range targets {
		for {
			st, err := harness.Status(ctx, t.url, t.hdr)
			if err == nil && st == http.StatusOK {
				break
			}
			if err := p.Exited(); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready: status %d, %v\n%s", t.name, st, err, p.Tail())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

type cacheCounts struct {
	hits, misses, ksCalls float64
	authRuns              int64
}

func medianOf(ss []sample, f func(sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return harness.Median(xs)
}

func msf(ns float64) string { return fmt.Sprintf("%.2f ms", ns/float64(time.Millisecond)) }

func report(w io.Writer, o options, targets []target, results [][]sample, cc cacheCounts, loadBefore, loadAfter string) {
	fmt.Fprintf(w, "%d rounds of %v per target after %v warm-up, interleaved with the order rotating each round; %d workers; GOMAXPROCS %d (bench process; Caddy its own); load average %s before, %s after.\n\n",
		o.Rounds, o.Duration, o.Warmup, o.Workers, runtime.GOMAXPROCS(0), loadBefore, loadAfter)
	fmt.Fprintln(w, "| target | req/s (median) | req/s by round | spread | p50 | p90 | p99 | max | errors | Caddy CPU µs/req | bench process CPU µs/req |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	rps := make([]float64, len(targets))
	p99 := make([]float64, len(targets))
	p50 := make([]float64, len(targets))
	ccpu := make([]float64, len(targets))
	for i, t := range targets {
		rs := results[i]
		by := make([]string, len(rs))
		lo, hi := rs[0].res.RPS, rs[0].res.RPS
		errs := 0
		var mx time.Duration
		for j, s := range rs {
			by[j] = fmt.Sprintf("%.0f", s.res.RPS)
			lo, hi = min(lo, s.res.RPS), max(hi, s.res.RPS)
			errs += s.res.Errors
			mx = max(mx, s.res.Max)
		}
		rps[i] = medianOf(rs, func(s sample) float64 { return s.res.RPS })
		p50[i] = medianOf(rs, func(s sample) float64 { return float64(s.res.P50) })
		p99[i] = medianOf(rs, func(s sample) float64 { return float64(s.res.P99) })
		ccpu[i] = medianOf(rs, func(s sample) float64 { return float64(s.caddyCPUPerRequest()) })
		other := medianOf(rs, func(s sample) float64 { return float64(s.res.CPUPerRequest()) })
		fmt.Fprintf(w, "| %s | %.0f | %s | %.2fx | %s | %s | %s | %s | %d | %.0f | %.0f |\n", t.name, rps[i], strings.Join(by, ", "), hi/lo,
			msf(p50[i]), msf(medianOf(rs, func(s sample) float64 { return float64(s.res.P90) })), msf(p99[i]),
			msf(float64(mx)), errs, ccpu[i]/1e3, other/1e3)
	}
	fmt.Fprintln(w)
	// Per-round ratios pair each appkey_auth round with the plain round
	// next to it in time, which cancels slow swings of the machine's load.
	pairs := make([]float64, len(results[0]))
	fwd := make([]float64, len(results[0]))
	for j := range pairs {
		pairs[j] = results[1][j].res.RPS / results[0][j].res.RPS
		fwd[j] = results[1][j].res.RPS / results[2][j].res.RPS
	}
	r1, r2 := rps[1]/rps[0], rps[1]/rps[2]
	p99r := p99[1] / p99[0]
	fmt.Fprintf(w, "- appkey_auth / plain (median req/s): **%.2f** (goal ≥ 0.95: %s); by round %s, median %.2f.\n", r1, harness.Verdict(r1 >= 0.95), fmtRatios(pairs), harness.Median(pairs))
	limPairs := make([]float64, len(results[0]))
	for j := range limPairs {
		limPairs[j] = results[3][j].res.RPS / results[0][j].res.RPS
	}
	r3 := rps[3] / rps[0]
	fmt.Fprintf(w, "- appkey_auth with a rate limit enforced / plain (median req/s): **%.2f** (goal ≥ 0.95: %s); by round %s, median %.2f; / appkey_auth without: %.2f.\n",
		r3, harness.Verdict(r3 >= 0.95), fmtRatios(limPairs), harness.Median(limPairs), rps[3]/rps[1])
	fmt.Fprintf(w, "- appkey_auth p99 / plain p99: **%.2f** (%s vs %s; goal ≤ 1.10: %s).\n", p99r, msf(p99[1]), msf(p99[0]), harness.Verdict(p99r <= 1.10))
	fmt.Fprintf(w, "- appkey_auth / forward_auth (median req/s): **%.2f**x (goal ≥ 2x: %s); by round %s.\n", r2, harness.Verdict(r2 >= 2), fmtRatios(fwd))
	fmt.Fprintf(w, "- Caddy CPU per request: appkey_auth %+.0f µs over plain (%.2fx), with a rate limit %+.0f µs (%.2fx), forward_auth %+.0f µs.\n",
		(ccpu[1]-ccpu[0])/1e3, ccpu[1]/ccpu[0], (ccpu[3]-ccpu[0])/1e3, ccpu[3]/ccpu[0], (ccpu[2]-ccpu[0])/1e3)
	fmt.Fprintf(w, "- During the rounds: appkey_auth cache hits %.0f, misses %.0f, key-service calls %.0f; the forward_auth endpoint asked the key service %d times.\n",
		cc.hits, cc.misses, cc.ksCalls, cc.authRuns)
	fmt.Fprintln(w, "\np50, p90, p99: medians of the rounds' own percentiles; max: the largest of any round; spread: fastest round / slowest round.")
	fmt.Fprintln(w, "Caddy CPU µs/req: the Caddy process's CPU time (/proc) per request it proxied, warm-up included; bench process CPU: this process's (load generator, upstream, auth endpoint, key service).")
}

func fmtRatios(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, ", ")
}
