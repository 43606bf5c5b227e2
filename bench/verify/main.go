// Command verify measures the key service's POST /v1/verify against a bare
// Go net/http handler, side by side in one run.
//
// It starts the real key service on SQLite in a temporary directory, seeds
// it with -keys keys over -apps apps through the service itself (so every
// stored hash is the one a real create writes), keeps a sample of the plain
// keys, and then runs -rounds rounds of each target, interleaved (bare,
// service, bare, service, ...), with the closed-loop generator of
// bench/loadgen over loopback. The service is asked to verify a random key
// of the sample with its app's verifier token, and every answer must be
// VALID; the bare handler decodes the same JSON body and answers a fixed
// verdict. It prints a markdown table: the median throughput of each target,
// their ratio, and the median p50 and p99 of the rounds.
//
//	go run ./bench/verify [-duration 4s] [-rounds 5] [-workers 16] [-keys 100000]
package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
	"github.com/appkeys/appkeys/bench/loadgen"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/keyservice"
)

type options struct {
	harness.RoundFlags
	keys        int
	apps        int
	sample      int
	seedWorkers int
	cpuProfile  string
	keepDir     bool
	database    string
}

func main() {
	var o options
	o.Flags()
	flag.IntVar(&o.keys, "keys", 100_000, "keys stored in the key service")
	flag.IntVar(&o.apps, "apps", 4, "apps the keys are spread over")
	flag.IntVar(&o.sample, "sample", 10_000, "plain keys kept to verify (random valid keys are drawn from them)")
	flag.IntVar(&o.seedWorkers, "seed-workers", 4, "concurrent key creates while seeding")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "after the rounds, run one more service round and write its CPU profile here")
	flag.BoolVar(&o.keepDir, "keep", false, "keep the temporary data directory")
	flag.StringVar(&o.database, "database", "", "also measure PostgreSQL (this empty database) with one and with two key-service replicas")
	harness.Main("verify benchmark", func(ctx context.Context) error { return run(ctx, o) })
}

// bareVerdict is what the bare handler answers: the shape of a VALID verdict.
var bareVerdict = []byte(`{"app_id":"app_bare","code":"VALID","expires_at":"2030-01-01T00:00:00Z","key_id":"key_bare","key_name":"bare","valid":true}` + "\n")

// bareHandler is the baseline: it decodes the verify body as the service
// does and answers a fixed verdict.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Key == "" {
		http.Error(w, `{"error":{"code":"bad_request","message":"bad body"}}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(bareVerdict)
}

type target struct {
	name string
	cfg  loadgen.Config
}

// postgresTargets starts two key-service replicas on the PostgreSQL database
// (one master key, as replicas must share), seeds it through the first, and
// returns two targets: verify through one replica, and verify spread over
// both (the load balancer's view).
func postgresTargets(ctx context.Context, o options, valid []byte) ([]target, func(), error) {
	mk := make([]byte, 32)
	crand.Read(mk)
	master := base64.StdEncoding.EncodeToString(mk)
	var servers []*keyserver.Server
	closeAll := func() {
		for _, s := range servers {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.Close(cctx)
			cancel()
		}
	}
	for i := 0; i < 2; i++ {
		dir, err := os.MkdirTemp("", "appkeys-bench-pg-")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		defer os.RemoveAll(dir)
		ks, err := keyserver.Start(ctx, keyserver.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: o.database, MasterKey: master})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("postgres replica %d: %w", i+1, err)
		}
		servers = append(servers, ks)
	}
	if !servers[0].Bootstrap.Created {
		closeAll()
		return nil, nil, fmt.Errorf("-database must name an empty database")
	}
	apps, sample, seedTime, err := seed(ctx, servers[0], o)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	fmt.Fprintf(os.Stderr, "seeded %d keys on PostgreSQL in %v\n", o.keys, seedTime.Round(time.Millisecond))
	urls := []string{servers[0].URL + "/v1/verify", servers[1].URL + "/v1/verify"}
	check := func(status int, body []byte) bool { return status == http.StatusOK && bytes.Contains(body, valid) }
	return []target{
		{"PostgreSQL, 1 replica", loadgen.Config{
			Next: func(_ int, rng *rand.Rand) loadgen.Request {
				k := sample[rng.IntN(len(sample))]
				return loadgen.Request{Method: http.MethodPost, URL: urls[0], Header: apps[k.app].auth, Body: k.body}
			},
			Check: check,
		}},
		{"PostgreSQL, 2 replicas", loadgen.Config{
			Next: func(w int, rng *rand.Rand) loadgen.Request {
				k := sample[rng.IntN(len(sample))]
				return loadgen.Request{Method: http.MethodPost, URL: urls[w%2], Header: apps[k.app].auth, Body: k.body}
			},
			Check: check,
		}},
	}, closeAll, nil
}

type app struct {
	id   string
	auth http.Header
}

type sampleKey struct {
	app  int
	body []byte
}

func run(ctx context.Context, o options) error {
	if o.Rounds < 1 || o.Workers < 1 || o.keys < 1 || o.apps < 1 || o.sample < 1 || o.seedWorkers < 1 {
		return fmt.Errorf("rounds, workers, keys, apps, sample and seed-workers must be at least 1")
	}
	o.sample = min(o.sample, o.keys)
	o.apps = min(o.apps, o.keys)

	dir, err := os.MkdirTemp("", "appkeys-bench-")
	if err != nil {
		return err
	}
	if o.keepDir {
		fmt.Fprintln(os.Stderr, "data directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ks, err := keyserver.Start(ctx, keyserver.Config{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ks.Close(cctx)
	}()

	apps, sample, seedTime, err := seed(ctx, ks, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeded %d keys over %d apps in %v (%.0f keys/s)\n", o.keys, o.apps, seedTime.Round(time.Millisecond), float64(o.keys)/seedTime.Seconds())

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/verify", bareHandler)
	bare, err := harness.Serve(mux)
	if err != nil {
		return err
	}
	defer bare.Close()

	verifyURL := ks.URL + "/v1/verify"
	bareURL := "http://" + bare.Addr + "/v1/verify"
	valid := []byte(`"code":"VALID"`)
	targets := []target{
		{"bare net/http handler", loadgen.Config{
			Next: func(_ int, rng *rand.Rand) loadgen.Request {
				k := sample[rng.IntN(len(sample))]
				return loadgen.Request{Method: http.MethodPost, URL: bareURL, Header: apps[k.app].auth, Body: k.body}
			},
			Check: func(status int, body []byte) bool { return status == http.StatusOK && bytes.Contains(body, valid) },
		}},
		{"key service POST /v1/verify", loadgen.Config{
			Next: func(_ int, rng *rand.Rand) loadgen.Request {
				k := sample[rng.IntN(len(sample))]
				return loadgen.Request{Method: http.MethodPost, URL: verifyURL, Header: apps[k.app].auth, Body: k.body}
			},
			Check: func(status int, body []byte) bool { return status == http.StatusOK && bytes.Contains(body, valid) },
		}},
	}
	if o.database != "" {
		pgTargets, closePG, err := postgresTargets(ctx, o, valid)
		if err != nil {
			return err
		}
		defer closePG()
		targets = append(targets, pgTargets...)
	}
	results := make([][]loadgen.Result, len(targets))
	runtime.GC()
	for round := range o.Rounds {
		for i, t := range targets {
			cfg := t.cfg
			cfg.Workers, cfg.Duration, cfg.Warmup = o.Workers, o.Duration, o.Warmup
			res, err := loadgen.Run(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d/%d %-28s %v\n", round+1, o.Rounds, t.name, res)
			if res.Errors > 0 {
				fmt.Fprintf(os.Stderr, "  first error: %s\n", res.FirstError)
			}
			results[i] = append(results[i], res)
		}
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		cfg := targets[1].cfg
		cfg.Workers, cfg.Duration, cfg.Warmup = o.Workers, o.Duration, o.Warmup
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		res, err := loadgen.Run(ctx, cfg)
		pprof.StopCPUProfile()
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "profiled round (not counted): %v; CPU profile in %s\n", res, o.cpuProfile)
	}

	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.name
	}
	report(os.Stdout, o, seedTime, names, results)
	return nil
}

// seed creates the apps and keys through the service and returns the apps'
// verifier tokens and a random sample of the plain keys.
func seed(ctx context.Context, ks *keyserver.Server, o options) ([]app, []sampleKey, time.Duration, error) {
	svc := ks.Service
	owner, err := svc.Authenticate(ctx, ks.Bootstrap.OwnerToken)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("owner token: %w", err)
	}
	start := time.Now()
	apps := make([]app, o.apps)
	for i := range apps {
		created, err := svc.CreateApp(ctx, owner, fmt.Sprintf("bench-%d", i), keyservice.KindCloudFunction)
		if err != nil {
			return nil, nil, 0, err
		}
		apps[i] = app{id: created.App.ID, auth: http.Header{
			"Authorization": {"Bearer " + created.VerifierToken},
			"Content-Type":  {"application/json"},
		}}
	}
	expires := svc.Now().Add(300 * 24 * time.Hour)
	// Every key is a candidate for the sample with equal odds: each worker
	// keeps its share of the sample by reservoir sampling.
	perWorker := (o.sample + o.seedWorkers - 1) / o.seedWorkers
	var next atomic.Int64
	var done atomic.Int64
	samples := make([][]sampleKey, o.seedWorkers)
	errs := make([]error, o.seedWorkers)
	var wg sync.WaitGroup
	for w := range o.seedWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			seen := 0
			for {
				n := int(next.Add(1)) - 1
				if n >= o.keys || ctx.Err() != nil {
					return
				}
				a := n % o.apps
				kc, err := svc.CreateKey(ctx, owner, apps[a].id, keyservice.CreateKeyRequest{Name: fmt.Sprintf("key-%d", n), ExpiresAt: expires})
				if err != nil {
					errs[w] = fmt.Errorf("create key %d: %w", n, err)
					return
				}
				body, _ := json.Marshal(map[string]string{"key": kc.Plain})
				k := sampleKey{app: a, body: body}
				if seen++; len(samples[w]) < perWorker {
					samples[w] = append(samples[w], k)
				} else if j := rng.IntN(seen); j < perWorker {
					samples[w][j] = k
				}
				if d := done.Add(1); d%10_000 == 0 {
					fmt.Fprintf(os.Stderr, "seeding: %d keys, %v\n", d, time.Since(start).Round(time.Millisecond))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return nil, nil, 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, 0, err
	}
	var sample []sampleKey
	for _, s := range samples {
		sample = append(sample, s...)
	}
	return apps, sample[:min(len(sample), o.sample)], elapsed, nil
}

func medianDur(rs []loadgen.Result, f func(loadgen.Result) time.Duration) time.Duration {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = float64(f(r))
	}
	return time.Duration(harness.Median(xs))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func report(w *os.File, o options, seedTime time.Duration, names []string, results [][]loadgen.Result) {
	fmt.Fprintf(w, "%d keys over %d apps (seeded through the service in %.1f s); %d rounds of %v each per target, interleaved, after %v warm-up; %d workers; GOMAXPROCS %d.\n\n",
		o.keys, o.apps, seedTime.Seconds(), o.Rounds, o.Duration, o.Warmup, o.Workers, runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, "| target | req/s (median) | req/s by round | p50 | p90 | p99 | max | errors | CPU µs/req |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	meds := make([]float64, len(names))
	for i, name := range names {
		rs := results[i]
		rps := make([]float64, len(rs))
		byRound := make([]string, len(rs))
		errs := 0
		var mx time.Duration
		for j, r := range rs {
			rps[j] = r.RPS
			byRound[j] = fmt.Sprintf("%.0f", r.RPS)
			errs += r.Errors
			mx = max(mx, r.Max)
		}
		meds[i] = harness.Median(rps)
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %d | %.0f |\n", name, meds[i], strings.Join(byRound, ", "),
			ms(medianDur(rs, func(r loadgen.Result) time.Duration { return r.P50 })),
			ms(medianDur(rs, func(r loadgen.Result) time.Duration { return r.P90 })),
			ms(medianDur(rs, func(r loadgen.Result) time.Duration { return r.P99 })),
			ms(mx), errs, float64(medianDur(rs, loadgen.Result.CPUPerRequest))/float64(time.Microsecond))
	}
	ratio := meds[1] / meds[0]
	p99 := medianDur(results[1], func(r loadgen.Result) time.Duration { return r.P99 })
	fmt.Fprintf(w, "\nRatio service/bare (median req/s): **%.2f** (goal ≥ 0.40: %s). Service p99 %s (goal < 5 ms: %s).\n",
		ratio, harness.Verdict(ratio >= 0.40), ms(p99), harness.Verdict(p99 < 5*time.Millisecond))
	fmt.Fprintln(w, "p50, p90 and p99 are the medians of the rounds' own percentiles; max is the largest of any round.")
	fmt.Fprintln(w, "CPU µs/req is the whole process's CPU time (generator and target together) per request, median of the rounds.")
	for i := 2; i < len(names); i++ {
		fmt.Fprintf(w, "Ratio %s / the SQLite service: **%.2f**; / bare: %.2f.\n", names[i], meds[i]/meds[1], meds[i]/meds[0])
	}
}
