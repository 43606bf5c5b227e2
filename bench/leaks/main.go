// Command leaks measures issue 15's promise standalone: a GitHub secret
// scanning report of 1,000 matches, every one a live key cached at a real
// sidecar (cache_ttl 10m), is answered, and every key refused by the
// sidecar, within a second.
//
// It runs the real key service (internal/keyserver, SQLite in a temporary
// directory or the empty PostgreSQL database -database names) trusting a
// P-256 key pair made here in GitHub's stead (its public key served on
// 127.0.0.1 as GitHub's meta/public_keys/secret_scanning document), and
// Caddy with appkey_auth, in this process, on loopback, and hands them to
// e2e.MeasureLeakBatch, which the e2e tests run too. Each round uses fresh
// keys; the figures are per round.
//
//	go run ./bench/leaks [-matches 1000] [-live 1000] [-rounds 5] [-database postgres://…]
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
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/appkeys/appkeys/caddymodule"
	"github.com/appkeys/appkeys/e2e"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/leaktest"
)

func main() {
	cfg := e2e.LeakBatchConfig{}
	flag.IntVar(&cfg.Matches, "matches", 1000, "matches in each report")
	flag.IntVar(&cfg.Live, "live", 0, "how many of them are live keys cached at the sidecar (0: all)")
	rounds := flag.Int("rounds", 5, "reports to time, each with fresh keys")
	database := flag.String("database", "", "an empty PostgreSQL database to use instead of SQLite")
	adminPort := flag.Int("admin-port", 2951, "Caddy admin port on localhost")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, *rounds, *database, *adminPort); err != nil {
		fmt.Fprintln(os.Stderr, "leaks benchmark:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg e2e.LeakBatchConfig, rounds int, database string, adminPort int) error {
	dir, err := os.MkdirTemp("", "appkeys-bench-leaks-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.Signer = leaktest.NewSigner()
	keys := leaktest.NewKeyServer(cfg.Signer)
	defer keys.Close()
	ks, err := keyserver.Start(ctx, keyserver.Config{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), DatabaseURL: database, LeakKeysURL: keys.URL,
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

	store := "SQLite"
	if database != "" {
		store = "PostgreSQL"
	}
	var answered, refused []time.Duration
	for i := range rounds {
		rep, err := e2e.MeasureLeakBatch(ctx, cfg)
		if err != nil {
			return err
		}
		if rep.TruePositives != rep.Live {
			return fmt.Errorf("round %d: %d true positives of %d live keys", i, rep.TruePositives, rep.Live)
		}
		answered, refused = append(answered, rep.Answered), append(refused, rep.AllRefused)
		fmt.Fprintf(os.Stderr, "round %d: answered %s, all %d keys refused %s after sending\n", i+1, ms(rep.Answered), rep.Live, ms(rep.AllRefused))
	}
	live := cfg.Live
	if live == 0 {
		live = cfg.Matches
	}
	fmt.Printf("Key service (%s, default settings) and Caddy with appkey_auth (cache_ttl 10m) in one process on loopback; "+
		"%d rounds of one signed report of %d matches, %d of them live keys cached at the sidecar; %s, GOMAXPROCS %d, %d CPUs.\n\n",
		store, rounds, cfg.Matches, live, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Println("| from sending the report | median | max |")
	fmt.Println("| --- | ---: | ---: |")
	fmt.Printf("| its answer (revocations committed) | %s | %s |\n", ms(median(answered)), ms(slices.Max(answered)))
	fmt.Printf("| the sidecar's 401 for the last of its keys | %s | %s |\n", ms(median(refused)), ms(slices.Max(refused)))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
