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
// With -database (an empty PostgreSQL database) it runs two key-service
// replicas on it instead: the sidecar follows replica A's feed, the changes
// are made through replica B, and both replicas take a steady stream of
// unrelated writes meanwhile (issue 16's cross-replica measurement).
//
//	go run ./bench/revocation [-keys 100] [-apps 20] [-creators 20] [-rolls 20] [-overlap 1s] [-poll 0] [-database postgres://…]
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
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
	database := flag.String("database", "", "an empty PostgreSQL database: two replicas on it, the sidecar on A, the changes through B, writers on both")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, *adminPort, *database); err != nil {
		fmt.Fprintln(os.Stderr, "revocation benchmark:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg e2e.RevocationConfig, adminPort int, database string) error {
	dir, err := os.MkdirTemp("", "appkeys-bench-revocation-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	setup := "Key service (SQLite, default settings)"
	replicas := 1
	if database != "" {
		setup, replicas = "Two key-service replicas (PostgreSQL, default settings; the sidecar on A, every change through B, a writer on each)", 2
	}
	// Replicas share the database and so the master key.
	mk := make([]byte, 32)
	crand.Read(mk)
	master := base64.StdEncoding.EncodeToString(mk)
	var servers []*keyserver.Server
	for i := range replicas {
		ks, err := keyserver.Start(ctx, keyserver.Config{
			Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, fmt.Sprint("data", i)), DatabaseURL: database, MasterKey: master,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			return err
		}
		defer ks.Close(context.Background())
		servers = append(servers, ks)
	}
	if !servers[0].Bootstrap.Created {
		return fmt.Errorf("-database must name an empty database")
	}
	ks := servers[0]
	cfg.KeyService, cfg.OwnerToken = ks.URL, ks.Bootstrap.OwnerToken
	if replicas == 2 {
		cfg.ChangeThrough = servers[1].URL
		cfg.BusyWriters = []string{servers[0].URL, servers[1].URL}
	}
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
	fmt.Printf("%s and Caddy with appkey_auth (cache_ttl 10m) in one process on loopback; "+
		"the sidecar polled with the key in %s; %s, GOMAXPROCS %d, %d CPUs; measured in %s.\n\n",
		setup, poll, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), time.Since(start).Round(time.Second))
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
