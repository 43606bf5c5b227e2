// Command revocation measures issue 4's promise standalone: with the
// sidecar's cache_ttl at 10m, the time from the 204 of a revoke, an app
// deletion or a key creator's deletion to the sidecar's first 401 for that
// key; and issue 14's: the time from a rolled key's overlap's end (its new
// expires_at) to the sidecar's first 401 for it.
//
// It runs the real key service (internal/keyserver, SQLite in a temporary
// directory, its default settings) and Caddy with appkey_auth in this
// process, both on loopback, and hands them to e2e.MeasureRevocations, the
// harness the e2e tests assert on (p99 under a second): for each case it
// caches a key at the sidecar (a 200), makes the change through the API,
// and polls the sidecar with the key until it answers 401.
//
//	go run ./bench/revocation [-keys 100] [-apps 20] [-creators 20] [-rolls 20] [-overlap 1s] [-poll 0]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/appkeys/appkeys/caddymodule"
	"github.com/appkeys/appkeys/e2e"
	"github.com/appkeys/appkeys/internal/keyserver"
)

func main() {
	cfg := e2e.RevocationConfig{}
	flag.IntVar(&cfg.Keys, "keys", 100, "key revocations to time")
	flag.IntVar(&cfg.Apps, "apps", 20, "app deletions to time (one sidecar site per app)")
	flag.IntVar(&cfg.Creators, "creators", 20, "creator deletions to time")
	flag.IntVar(&cfg.Rolls, "rolls", 20, "key rolls to time (each waits out its overlap)")
	flag.StringVar(&cfg.RollOverlap, "overlap", "1s", "each roll's overlap")
	flag.DurationVar(&cfg.PollEvery, "poll", 0, "pause between two polls of the sidecar (0: a tight loop)")
	flag.DurationVar(&cfg.Bound, "bound", 5*time.Second, "give up on a key still accepted this long after its change")
	adminPort := flag.Int("admin-port", 2951, "Caddy admin port on localhost")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, *adminPort); err != nil {
		fmt.Fprintln(os.Stderr, "revocation benchmark:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg e2e.RevocationConfig, adminPort int) error {
	dir, err := os.MkdirTemp("", "appkeys-bench-revocation-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ks, err := keyserver.Start(ctx, keyserver.Config{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer ks.Close(context.Background())

	cfg.KeyService, cfg.OwnerToken = ks.URL, ks.Bootstrap.OwnerToken
	cfg.Admin = fmt.Sprintf("localhost:%d", adminPort)
	cfg.Load, cfg.Logf = e2e.LoadCaddyfile, e2e.Stderrf
	defer caddy.Stop()

	start := time.Now()
	rep, err := e2e.MeasureRevocations(ctx, cfg)
	if err != nil {
		return err
	}
	poll := "a tight loop"
	if cfg.PollEvery > 0 {
		poll = "every " + cfg.PollEvery.String()
	}
	fmt.Printf("Key service (SQLite, default settings) and Caddy with appkey_auth (cache_ttl 10m) in one process on loopback; "+
		"the sidecar polled with the key in %s; %s, GOMAXPROCS %d, %d CPUs; measured in %s.\n\n",
		poll, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), time.Since(start).Round(time.Second))
	fmt.Println("| change (or a roll's overlap's end), then first 401 at the sidecar | n | p50 | p99 | max |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: |")
	for _, c := range rep.Cases() {
		l := c.Latencies
		fmt.Printf("| %s | %d | %s | %s | %s |\n", c.Name, len(l), ms(l.Quantile(0.5)), ms(l.Quantile(0.99)), ms(l.Max()))
	}
	if err := rep.Check(time.Second); err != nil {
		return err
	}
	fmt.Println("\nEvery p99 is under 1 s (issues 4 and 14).")
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
