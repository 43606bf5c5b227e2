// Command usage measures what the sidecars' usage reports cost the key
// service: -sidecars sidecars (spread over apps, -per-app to an app) each
// report -keys keys of their app (POST /v1/usage, one report each), round
// after round, -workers at a time. It prints, per round, the reports' wall
// time (median and p99), the process's CPU time per report and the store's
// write transactions per report. The first round inserts each key's bucket
// of the hour; later rounds add to them, as every report after a sidecar's
// first in an hour does.
//
// The key service runs in this process, on SQLite in a temporary
// directory or on the empty PostgreSQL database -database names. The
// report bodies are encoded before the clock starts, so the CPU time is
// the key service's (HTTP, JSON, the store) plus the loopback client's
// sending, not the encoding.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/keyservice"
)

type options struct {
	sidecars, perApp, keys, rounds, workers, seedWorkers int
	database                                             string
}

func main() {
	var o options
	flag.IntVar(&o.sidecars, "sidecars", 100, "sidecars reporting")
	flag.IntVar(&o.perApp, "per-app", 3, "sidecars of each app (they report the same keys)")
	flag.IntVar(&o.keys, "keys", 1000, "keys in each report (each app has this many)")
	flag.IntVar(&o.rounds, "rounds", 4, "rounds of one report from every sidecar")
	flag.IntVar(&o.workers, "workers", 8, "reports in flight at once")
	flag.IntVar(&o.seedWorkers, "seed-workers", 4, "concurrent key creates while seeding")
	flag.StringVar(&o.database, "database", "", "run the service on this empty PostgreSQL database instead of SQLite")
	harness.Main("usage benchmark", func(ctx context.Context) error { return run(ctx, o) })
}

type sidecar struct {
	auth string
	body []byte
}

func run(ctx context.Context, o options) error {
	if o.sidecars < 1 || o.perApp < 1 || o.keys < 1 || o.keys > keyservice.MaxUsageReportKeys || o.rounds < 1 || o.workers < 1 {
		return fmt.Errorf("every count must be at least 1, and -keys at most %d", keyservice.MaxUsageReportKeys)
	}
	dir, err := os.MkdirTemp("", "appkeys-bench-usage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ks, err := keyserver.Start(ctx, keyserver.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: o.database})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ks.Close(cctx)
	}()
	store := "SQLite"
	if o.database != "" {
		store = "PostgreSQL"
	}

	sidecars, seedTime, err := seed(ctx, ks, o)
	if err != nil {
		return err
	}
	apps := (o.sidecars + o.perApp - 1) / o.perApp
	fmt.Fprintf(os.Stderr, "seeded %d apps × %d keys in %v\n", apps, o.keys, seedTime.Round(time.Millisecond))

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.workers}}
	fmt.Printf("%s: %d sidecars (%d apps, %d each) reporting %d keys each, %d rounds, %d reports in flight, GOMAXPROCS %d, load %s\n\n",
		store, o.sidecars, apps, o.perApp, o.keys, o.rounds, o.workers, runtime.GOMAXPROCS(0), harness.Loadavg())
	fmt.Println("| round | reports | wall | report median | report p99 | CPU per report | store writes per report | rows per second |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for r := 1; r <= o.rounds; r++ {
		before, err := harness.Scrape(ctx, ks.URL+"/metrics")
		if err != nil {
			return err
		}
		cpu0 := cpuTime()
		start := time.Now()
		lat, err := round(ctx, client, ks.URL, sidecars, o.workers)
		if err != nil {
			return err
		}
		wall := time.Since(start)
		cpu := cpuTime() - cpu0
		after, err := harness.Scrape(ctx, ks.URL+"/metrics")
		if err != nil {
			return err
		}
		writes := after[`appkeys_store_duration_seconds_count{op="write"}`] - before[`appkeys_store_duration_seconds_count{op="write"}`]
		slices.Sort(lat)
		n := len(sidecars)
		label := fmt.Sprint(r)
		if r == 1 {
			label += " (new buckets)"
		}
		fmt.Printf("| %s | %d | %.2f s | %.1f ms | %.1f ms | %.0f µs | %.2f | %.0f |\n", label, n, wall.Seconds(),
			ms(lat[n/2]), ms(lat[min(n-1, n*99/100)]), float64(cpu.Microseconds())/float64(n), writes/float64(n),
			float64(n*o.keys)/wall.Seconds())
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuTime is this process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// round sends one report from every sidecar, workers at a time, and
// returns each report's wall time.
func round(ctx context.Context, c *http.Client, base string, sidecars []sidecar, workers int) ([]time.Duration, error) {
	lat := make([]time.Duration, len(sidecars))
	var next atomic.Int64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(sidecars) {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/usage", bytes.NewReader(sidecars[i].body))
				req.Header.Set("Authorization", sidecars[i].auth)
				req.Header.Set("Content-Type", "application/json")
				t := time.Now()
				resp, err := c.Do(req)
				if err == nil {
					var ans struct{ Accepted, Ignored int }
					err = json.NewDecoder(resp.Body).Decode(&ans)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != 200 || ans.Ignored != 0) {
						err = fmt.Errorf("report answered %d, %+v", resp.StatusCode, ans)
					}
				}
				lat[i] = time.Since(t)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return lat, firstErr
}

// seed creates the apps and their keys through the service, and encodes
// each sidecar's report (its app's keys, random counts).
func seed(ctx context.Context, ks *keyserver.Server, o options) ([]sidecar, time.Duration, error) {
	svc := ks.Service
	owner, err := svc.Authenticate(ctx, ks.Bootstrap.OwnerToken)
	if err != nil {
		return nil, 0, fmt.Errorf("owner token (-database must name an empty database): %w", err)
	}
	start := time.Now()
	apps := (o.sidecars + o.perApp - 1) / o.perApp
	expires := svc.Now().Add(300 * 24 * time.Hour)
	out := make([]sidecar, 0, o.sidecars)
	for a := range apps {
		created, err := svc.CreateApp(ctx, owner, fmt.Sprintf("bench-%d", a), keyservice.KindCloudFunction)
		if err != nil {
			return nil, 0, err
		}
		ids := make([]string, o.keys)
		var next atomic.Int64
		errs := make([]error, o.seedWorkers)
		var wg sync.WaitGroup
		for w := range o.seedWorkers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= o.keys {
						return
					}
					k, err := svc.CreateKey(ctx, owner, created.App.ID, keyservice.CreateKeyRequest{Name: fmt.Sprintf("key-%d", i), ExpiresAt: expires})
					if err != nil {
						errs[w] = err
						return
					}
					ids[i] = k.Key.ID
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, 0, err
			}
		}
		for range min(o.perApp, o.sidecars-len(out)) {
			type entry struct {
				KeyID       string `json:"key_id"`
				Allowed     int64  `json:"allowed"`
				RateLimited int64  `json:"rate_limited"`
				Forbidden   int64  `json:"forbidden"`
			}
			entries := make([]entry, len(ids))
			for i, id := range ids {
				entries[i] = entry{KeyID: id, Allowed: 1 + rand.Int64N(500), RateLimited: rand.Int64N(3)}
			}
			body, err := json.Marshal(map[string]any{"keys": entries})
			if err != nil {
				return nil, 0, err
			}
			out = append(out, sidecar{auth: "Bearer " + created.VerifierToken, body: body})
		}
		fmt.Fprintf(os.Stderr, "seeding: app %d of %d, %v\n", a+1, apps, time.Since(start).Round(time.Second))
	}
	return out, time.Since(start), nil
}
