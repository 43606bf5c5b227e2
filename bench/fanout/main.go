// Command fanout measures what the change feed costs the key service with
// thousands of sidecars long-polling it (issue 16): store reads per write,
// wake latency, memory per idle subscriber and CPU per write, at each of
// -subscribers concurrent long-polls.
//
// It builds `appkeys` and runs `appkeys serve` as its own process (SQLite in
// a temporary directory, or the empty PostgreSQL database -database names),
// so that its CPU time and memory are its own. It creates one app per
// -per-app subscribers (3 sidecars an app, as deployments run them), then
// for each size opens that many long-polls on GET /v1/events over loopback,
// each with its app's verifier token, spread over several client addresses
// (127.0.0.2 and up) so that no address runs out of ephemeral ports. With
// every long-poll waiting it reads the service's memory, measures an idle
// window, then revokes -writes keys of random subscribed apps one at a time,
// -interval apart, timing each from the revoke's start to every one of its
// app's subscribers receiving the event.
//
// Both processes need a file descriptor per long-poll: the harness raises
// its RLIMIT_NOFILE to the hard limit (the service, a Go program, raises
// its own), and a size over what the hard limit allows runs at the largest
// size that fits, and says so.
//
// It measures each size twice, side by side, with a service of its own
// each: waiting long-polls parked off net/http (the default) and held in
// net/http (--park-long-polls=false). A run takes 5 to 8 minutes.
//
//	go run ./bench/fanout [-subscribers 1000,10000,30000] [-database postgres://…]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
	"github.com/appkeys/appkeys/internal/client"
)

type options struct {
	sizes    []int
	perApp   int
	writes   int
	interval time.Duration
	idle     time.Duration
	sources  int
	database string
	keep     bool

	repollWait, repollWindow time.Duration
	modes                    []string // "parked", "held": how the service keeps waiting long-polls
}

func main() {
	var o options
	sizes := flag.String("subscribers", "1000,10000,30000", "concurrent long-polls to measure, comma-separated")
	flag.IntVar(&o.perApp, "per-app", 3, "subscribers of each app (sidecars an app)")
	flag.IntVar(&o.writes, "writes", 20, "revocations timed at each size")
	flag.DurationVar(&o.interval, "interval", 500*time.Millisecond, "time from one revocation's start to the next")
	flag.DurationVar(&o.idle, "idle", 3*time.Second, "idle window measured before the writes (the baseline subtracted from them)")
	flag.IntVar(&o.sources, "sources", 8, "client source addresses (127.0.0.2 and up) the long-polls are spread over")
	flag.StringVar(&o.database, "database", "", "run the service on this empty PostgreSQL database instead of SQLite")
	flag.DurationVar(&o.repollWait, "repoll-wait", 2*time.Second, "after each size's writes, the same subscribers long-poll with this wait to time re-polls (0: skip)")
	flag.DurationVar(&o.repollWindow, "repoll-window", 10*time.Second, "how long re-polls are measured")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (the service's log and data)")
	modes := flag.String("long-polls", "parked,held", "how the service keeps waiting long-polls, each measured in turn with a service of its own: parked (off net/http, the default) and held (in net/http, --park-long-polls=false)")
	harness.Main("fanout benchmark", func(ctx context.Context) error {
		for _, m := range strings.Split(*modes, ",") {
			if m = strings.TrimSpace(m); m != "parked" && m != "held" {
				return fmt.Errorf("-long-polls: %q is neither parked nor held", m)
			}
			o.modes = append(o.modes, strings.TrimSpace(m))
		}
		for _, f := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("-subscribers: %q is not a positive number", f)
			}
			o.sizes = append(o.sizes, n)
		}
		return run(ctx, o)
	})
}

func run(ctx context.Context, o options) error {
	if o.perApp < 1 || o.writes < 1 || o.interval <= 0 || o.sources < 1 || o.sources > 200 {
		return errors.New("-per-app, -writes, -interval and -sources (at most 200) must be positive")
	}
	if o.database != "" && len(o.modes) > 1 {
		return errors.New("-database: the service needs an empty database for each -long-polls mode; name one mode")
	}
	hard, err := harness.RaiseFileLimit()
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	// Each process holds one descriptor per long-poll, plus its own files,
	// listeners and the store's connections.
	fit := int(hard) - 1000
	var sizes []size
	for _, n := range o.sizes {
		if n < o.perApp {
			return fmt.Errorf("-subscribers: %d is fewer than -per-app %d", n, o.perApp)
		}
		sizes = append(sizes, size{asked: n, n: min(n, fit)})
	}
	dir, done, err := harness.TempDir("appkeys-bench-fanout-", o.keep)
	if err != nil {
		return err
	}
	defer done()
	bin, err := harness.Build(ctx, dir, "./cmd/appkeys")
	if err != nil {
		return err
	}
	for _, mode := range o.modes {
		if err := runMode(ctx, o, mode, bin, filepath.Join(dir, mode), hard, slices.Clone(sizes)); err != nil {
			return err
		}
	}
	return nil
}

// runMode measures every size on a service of its own that keeps waiting
// long-polls as mode says, and reports them.
func runMode(ctx context.Context, o options, mode, bin, dir string, hard uint64, sizes []size) error {
	largest := 0
	for _, s := range sizes {
		largest = max(largest, s.n)
	}
	ports, err := harness.FreePorts(1)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	data := filepath.Join(dir, "data")
	args := []string{"serve", "--addr", addr, "--data", data, "--log-level", "warn", "--park-long-polls=" + strconv.FormatBool(mode == "parked")}
	if o.database != "" {
		args = append(args, "--database", o.database)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ks, err := harness.Start("appkeys", dir, bin, nil, args...)
	if err != nil {
		return err
	}
	defer ks.Stop()
	base := "http://" + addr
	if err := ks.WaitFor(ctx, 60*time.Second, "readiness", func() bool {
		st, err := harness.Status(ctx, base+"/readyz", nil)
		return err == nil && st == http.StatusOK
	}); err != nil {
		return err
	}
	tok, err := os.ReadFile(filepath.Join(data, "owner.token"))
	if err != nil {
		return fmt.Errorf("owner token (-database must name an empty database): %w", err)
	}
	// A revoke bounded at 10 s: under overload it fails and is counted.
	owner, err := client.New(base, strings.TrimSpace(string(tok)), client.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	seedStart := time.Now()
	apps, err := createApps(ctx, owner, (largest+o.perApp-1)/o.perApp)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %d apps in %v\n", len(apps), time.Since(seedStart).Round(time.Millisecond))

	loadBefore := harness.Loadavg()
	started := time.Now()
	svc := &service{base: base, addr: addr, proc: ks}
	for i := range sizes {
		s := &sizes[i]
		if err := measure(ctx, o, svc, owner, apps[:(s.n+o.perApp-1)/o.perApp], s); err != nil {
			// Reported in its row; a larger size would fare no better.
			s.err = err
			fmt.Fprintf(os.Stderr, "%d subscribers: %v\n", s.n, err)
			break
		}
		if o.repollWait > 0 {
			if err := measureRepoll(ctx, o, svc, apps[:(s.n+o.perApp-1)/o.perApp], s); err != nil {
				s.repoll.err = err
				fmt.Fprintf(os.Stderr, "%d subscribers, re-polls: %v\n", s.n, err)
			}
		}
		fmt.Fprintf(os.Stderr, "%d subscribers: feed reads/write %.2f, wake p50 %s p99 %s, %s per subscriber, CPU/write %v\n",
			s.n, s.feedPerWrite, ms(harness.Quantile(s.wake, 0.5)), ms(harness.Quantile(s.wake, 0.99)), kib(s.goPerSub), s.cpuPerWrite.Round(time.Microsecond))
	}
	store := "SQLite"
	if o.database != "" {
		store = "PostgreSQL"
	}
	report(os.Stdout, o, store+", long-polls "+mode, hard, sizes, loadBefore, harness.Loadavg(), time.Since(started))
	return nil
}

// app is a subscribed app and its verifier token.
type app struct{ id, token string }

// createApps creates n apps through the API, 8 at a time.
func createApps(ctx context.Context, owner *client.Client, n int) ([]app, error) {
	apps := make([]app, n)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				a, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: fmt.Sprintf("fanout-%d", i), Kind: client.KindCloudFunction})
				if err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
					return
				}
				apps[i] = app{a.ID, a.VerifierToken}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return apps, ctx.Err()
}
