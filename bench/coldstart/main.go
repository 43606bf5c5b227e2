// Command coldstart measures a sidecar that restarts cold (issue 16): a
// freshly started Caddy with appkey_auth, an empty cache, and traffic
// carrying many distinct valid keys at once, so that every key misses at
// first. It reports, per -window of the first -duration, what the key
// service bears (verify calls/s, its CPU, the most verify calls in flight
// at once) and what clients see (p50/p99 latency, 503s, timeouts), with
// appkey_auth's max_verify_calls cap and without it, side by side in one
// run.
//
// The key service (`appkeys serve`, SQLite) runs as its own process, so its
// CPU time is its own; it is seeded once with -keys valid keys of one app
// (in this process, through the service's own CreateKey), then started
// afresh for each phase on that data directory, read once beforehand so
// that no phase waits for the disk. Caddy (./cmd/caddy) runs as
// its own process too, started afresh for each phase. Between the two sits
// a counting proxy in this process, which counts the verify calls and
// those in flight at once exactly, as the key service receives them.
//
// The load is open-loop, as traffic from many clients is: -rate requests
// per second whatever the answers, each a GET with one key, at most
// -outstanding at once (more are counted as shed, not sent), each given up
// after -client-timeout. Keys are sent first in a shuffled pass over all of
// them (every request a distinct key, a miss), then drawn at random (hits,
// once cached). failed_attempts is off: the load comes from one address,
// and real clients come from many.
//
//	go run ./bench/coldstart [-keys 100000] [-duration 60s] [-rate 2000] [-caps 64,off]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
)

type options struct {
	keys          int
	duration      time.Duration
	window        time.Duration
	rate          int
	outstanding   int
	clientTimeout time.Duration
	caps          []string
	seedWorkers   int
	data          string
	keep          bool
}

func main() {
	var o options
	caps := flag.String("caps", "64,off", "max_verify_calls of each phase, in order, comma-separated (a number or off)")
	flag.IntVar(&o.keys, "keys", 100_000, "valid keys of the one app, all sent")
	flag.DurationVar(&o.duration, "duration", time.Minute, "measured time of each phase, from Caddy's first request")
	flag.DurationVar(&o.window, "window", 10*time.Second, "reporting window")
	flag.IntVar(&o.rate, "rate", 2000, "requests per second sent, whatever the answers (open loop)")
	flag.IntVar(&o.outstanding, "outstanding", 4096, "requests in flight at most; more are shed (counted, not sent)")
	flag.DurationVar(&o.clientTimeout, "client-timeout", 5*time.Second, "a client gives up on its request after this")
	flag.IntVar(&o.seedWorkers, "seed-workers", 4, "concurrent key creates while seeding")
	flag.StringVar(&o.data, "data", "", "reuse (or seed, when empty) this key-service data directory; it keeps keys.txt with the plain keys, so later runs skip seeding")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, Caddyfiles, and the seeded data unless -data)")
	harness.Main("coldstart benchmark", func(ctx context.Context) error {
		for _, c := range strings.Split(*caps, ",") {
			c = strings.TrimSpace(c)
			if n, err := strconv.Atoi(c); c != "off" && (err != nil || n < 1) {
				return fmt.Errorf("-caps: %q is neither a positive number nor off", c)
			}
			o.caps = append(o.caps, c)
		}
		return run(ctx, o)
	})
}

func run(ctx context.Context, o options) error {
	if o.keys < 1 || o.rate < 1 || o.outstanding < 1 || o.window <= 0 || o.duration < o.window || o.clientTimeout <= 0 {
		return errors.New("-keys, -rate, -outstanding, -window, -client-timeout must be positive, and -duration at least -window")
	}
	// Each request in flight holds a connection in this process and in
	// Caddy, and uncapped, one more from Caddy to the key service.
	harness.RaiseFileLimit() // as far as it goes; a low limit shows as errors
	dir, done, err := harness.TempDir("appkeys-bench-coldstart-", o.keep)
	if err != nil {
		return err
	}
	defer done()
	ksBin, err := harness.Build(ctx, dir, "./cmd/appkeys")
	if err != nil {
		return err
	}
	caddyBin, err := harness.Build(ctx, dir, "./cmd/caddy")
	if err != nil {
		return err
	}
	data := o.data
	if data == "" {
		data = dir + "/data"
	}
	s, err := seeded(ctx, data, o)
	if err != nil {
		return err
	}

	loadBefore := harness.Loadavg()
	started := time.Now()
	var phases []*phase
	for _, c := range o.caps {
		p := &phase{cap: c}
		if err := p.run(ctx, o, dir, data, ksBin, caddyBin, s); err != nil {
			return fmt.Errorf("max_verify_calls %s: %w", c, err)
		}
		phases = append(phases, p)
		fmt.Fprintf(os.Stderr, "max_verify_calls %s: %s\n", c, p.total())
	}
	report(os.Stdout, o, s, phases, loadBefore, harness.Loadavg(), time.Since(started))
	return nil
}
