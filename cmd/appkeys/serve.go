package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/webhook"
)

func init() { commands = append(commands, newServeCmd) }

// serveFlags are the key service's settings; `appkeys up` shares them.
type serveFlags struct {
	addr, data, database, maxLifetime, logLevel, logFormat string
	failureRate                                            float64
	failureBurst                                           int

	// serve only
	tlsCert, tlsKey string
	metricsAddr     string
	publicURL       string
	trustedProxies  []string
	leakKeysURL     string
	leakKeysFile    string
	leakAction      string
	parkLongPolls   bool
	serve           bool // these flags are registered (up has none of them)
	usageRetention  time.Duration
	oidc            oidcFlags
	// webhooksAllowPrivate: prefixes webhooks may reach though not public.
	webhooksAllowPrivate []string
}

func (f *serveFlags) register(cmd *cobra.Command, defaultAddr string) {
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", defaultAddr, "listen address of the key service")
	fl.StringVar(&f.data, "data", "./appkeys-data", "data directory: SQLite database, master key, bootstrap tokens")
	fl.StringVar(&f.database, "database", "", "PostgreSQL URL (postgres://…) to use instead of SQLite (env APPKEYS_DATABASE_URL)")
	fl.StringVar(&f.maxLifetime, "max-key-lifetime", "365d", "latest expiry a new key may have, from now (e.g. 90d, 8760h)")
	fl.Float64Var(&f.failureRate, "verify-failure-rate", keyserver.DefaultVerifyFailureRate, "failed verifies per second allowed to each app's sidecars, per replica; more get 429")
	fl.IntVar(&f.failureBurst, "verify-failure-burst", keyserver.DefaultVerifyFailureBurst, "failed verifies each app's sidecars may send at once before --verify-failure-rate applies")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
}

// registerServe adds the flags of `serve` alone.
func (f *serveFlags) registerServe(cmd *cobra.Command) {
	f.serve = true
	fl := cmd.Flags()
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with; needs --tls-key")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics on this address alone (e.g. a private 0.0.0.0:9700) and answer 404 for it on --addr")
	fl.StringVar(&f.publicURL, "public-url", "", "URL browsers reach the console at, such as https://keys.example.com; https makes the console's cookies Secure")
	fl.StringSliceVar(&f.trustedProxies, "trusted-proxies", nil, "proxies whose X-Forwarded-Proto is believed: CIDRs, addresses or private_ranges (comma-separated or repeated)")
	fl.StringVar(&f.leakKeysURL, "leak-keys-url", keyserver.GitHubLeakKeysURL, "where the public keys that sign GitHub's secret scanning leak reports (POST /v1/leaks/github) are read; empty refuses every report")
	fl.StringVar(&f.leakKeysFile, "leak-keys-file", "", "read those public keys from this file instead (GitHub's meta/public_keys/secret_scanning document), for air-gapped installs")
	fl.BoolVar(&f.parkLongPolls, "park-long-polls", true, "take waiting HTTP/1.1 long-polls on /v1/events off net/http while they wait, which holds each in a fraction of the memory; false keeps them in net/http (for comparison)")
	fl.StringVar(&f.leakAction, "leak-action", "revoke", "what a verified leak report does to a live key: revoke (at once, reason leaked) or notify (keep it working, marked leaked)")
	fl.DurationVar(&f.usageRetention, "usage-retention", keyserver.DefaultUsageRetention, "how long the hourly request counts the sidecars report are kept (older hours are pruned in the background)")
	f.oidc.register(cmd)
	fl.StringSliceVar(&f.webhooksAllowPrivate, "webhooks-allow-private", nil, "address prefixes webhook deliveries may reach though not public, for receivers on premises (CIDRs or addresses, comma-separated or repeated, such as 10.20.0.0/16); by default loopback, private, link-local and metadata addresses are refused when a delivery connects")
}

func (f *serveFlags) config(stderr io.Writer) (keyserver.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return keyserver.Config{}, fmt.Errorf("invalid --log-level %q: use debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return keyserver.Config{}, fmt.Errorf("invalid --log-format %q: use text or json", f.logFormat)
	}
	maxLife, err := parseDays(f.maxLifetime)
	if err != nil || maxLife <= 0 {
		return keyserver.Config{}, fmt.Errorf("invalid --max-key-lifetime %q: use a number of days such as 365d, or a duration such as 720h", f.maxLifetime)
	}
	if !(f.failureRate > 0) || f.failureBurst < 1 {
		return keyserver.Config{}, fmt.Errorf("invalid --verify-failure-rate %v or --verify-failure-burst %d: both must be positive", f.failureRate, f.failureBurst)
	}
	db := f.database
	if db == "" {
		db = os.Getenv("APPKEYS_DATABASE_URL")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return keyserver.Config{}, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	adminToken, err := suppliedToken("APPKEYS_ADMIN_TOKEN", keyserver.AdminToken, os.Getenv("APPKEYS_ADMIN_TOKEN"))
	if err != nil {
		return keyserver.Config{}, err
	}
	ownerToken, err := suppliedToken("APPKEYS_BOOTSTRAP_TOKEN", keyserver.OwnerToken, os.Getenv("APPKEYS_BOOTSTRAP_TOKEN"))
	if err != nil {
		return keyserver.Config{}, err
	}
	if f.publicURL != "" {
		u, err := url.Parse(f.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return keyserver.Config{}, fmt.Errorf("invalid --public-url %q: use the URL browsers reach the console at, such as https://keys.example.com", f.publicURL)
		}
	}
	proxies, err := console.ParseTrustedProxies(f.trustedProxies)
	if err != nil {
		return keyserver.Config{}, fmt.Errorf("invalid --trusted-proxies: %w", err)
	}
	leakURL := f.leakKeysURL
	if f.leakKeysFile != "" {
		if leakURL != keyserver.GitHubLeakKeysURL && leakURL != "" {
			return keyserver.Config{}, fmt.Errorf("--leak-keys-url and --leak-keys-file: give one, not both")
		}
		leakURL = ""
	}
	if leakURL != "" {
		if u, err := url.Parse(leakURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return keyserver.Config{}, fmt.Errorf("invalid --leak-keys-url %q: use an http(s) URL such as %s", leakURL, keyserver.GitHubLeakKeysURL)
		}
	}
	if f.usageRetention < 0 || (f.usageRetention > 0 && f.usageRetention < time.Hour) {
		return keyserver.Config{}, fmt.Errorf("invalid --usage-retention %s: use at least 1h, such as 2160h (90 days)", f.usageRetention)
	}
	if f.leakAction != "" && f.leakAction != "revoke" && f.leakAction != "notify" { // "": up, which has no such flag
		return keyserver.Config{}, fmt.Errorf("invalid --leak-action %q: use revoke or notify", f.leakAction)
	}
	oidcOpts, tokenLogin, err := f.oidc.options()
	if err != nil {
		return keyserver.Config{}, err
	}
	hooksAllow, err := webhook.ParsePrefixes(strings.Join(f.webhooksAllowPrivate, ","))
	if err != nil {
		return keyserver.Config{}, fmt.Errorf("invalid --webhooks-allow-private: %w", err)
	}
	logger := slog.New(h)
	cfg := keyserver.Config{
		LeakKeysURL:        leakURL,
		LeakKeysFile:       f.leakKeysFile,
		LeakAction:         f.leakAction,
		UsageRetention:     f.usageRetention,
		MetricsAddr:        f.metricsAddr,
		TLSCertFile:        f.tlsCert,
		TLSKeyFile:         f.tlsKey,
		HeldLongPolls:      f.serve && !f.parkLongPolls,
		Addr:               f.addr,
		DataDir:            f.data,
		DatabaseURL:        db,
		MasterKey:          os.Getenv("APPKEYS_MASTER_KEY"),
		AdminToken:         adminToken,
		BootstrapToken:     ownerToken,
		MaxKeyLifetime:     maxLife,
		VerifyFailureRate:  f.failureRate,
		VerifyFailureBurst: f.failureBurst,
		Logger:             logger,
		Console:            console.Options{PublicURL: f.publicURL, TrustedProxies: proxies, Logger: logger, OIDC: oidcOpts, NoTokenLogin: !tokenLogin}.Mount,
	}
	cfg.WebhooksAllowPrivate = hooksAllow
	return cfg, nil
}

// suppliedToken checks a bootstrap token read from the environment variable
// env, and refuses, before anything starts, one that is a placeholder or a
// pattern, even when the store is bootstrapped already: a guessable token
// in the environment is a sign it may be a live credential.
func suppliedToken(env string, kind keyserver.TokenKind, tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	if err := kind.Check(tok); err != nil {
		return "", fmt.Errorf("%s %w; make one with: appkeys gen-token %s", env, err, kind)
	}
	return tok, nil
}

// parseDays reads "30d" as days, and anything else as a Go duration.
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the key service",
		Long: `Run the key service: the /v1 JSON API, the web console, /healthz, /readyz and
/metrics (on --metrics-addr instead, when set).

On an empty store it creates the platform admin and a first organization with
its owner, and writes their tokens to <data>/admin.token and <data>/owner.token
(mode 0600). APPKEYS_ADMIN_TOKEN and APPKEYS_BOOTSTRAP_TOKEN fix those tokens;
make them with 'appkeys gen-token admin' and 'appkeys gen-token owner'.
The master key (32 bytes, base64) comes from APPKEYS_MASTER_KEY, or is
generated into <data>/master.key. Losing it makes every stored secret
unreadable and every stored key unverifiable: back it up.

With --oidc-issuer, --oidc-client-id and --oidc-client-secret-file the
console also offers "Sign in with <--oidc-name>" (OpenID Connect, code flow
with PKCE); users are found by verified email, and created only with
--oidc-auto-create member. --console-token-login=false leaves only that.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := keyserver.Start(ctx, cfg)
			if err != nil {
				return err
			}
			printBootstrap(cmd.OutOrStdout(), srv)
			cfg.Logger.Info("key service listening", "url", srv.URL, "store", storeName(cfg))
			if srv.MetricsURL != "" {
				cfg.Logger.Info("metrics listening", "url", srv.MetricsURL+"/metrics")
			}
			select {
			case <-ctx.Done():
			case <-waitChan(srv):
			}
			cfg.Logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			return srv.Close(sctx)
		},
	}
	f.register(cmd, "127.0.0.1:8700")
	f.registerServe(cmd)
	return cmd
}

func waitChan(srv *keyserver.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- srv.Wait() }()
	return ch
}

func storeName(cfg keyserver.Config) string {
	if cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite"
}

// printBootstrap says where the tokens of a first start are. The tokens
// themselves go to files, never to the terminal or the log.
func printBootstrap(w io.Writer, srv *keyserver.Server) {
	b := srv.Bootstrap
	if b.MasterKeyFile != "" {
		fmt.Fprintf(w, "Generated a master key in %s. Back it up: without it stored secrets cannot be read.\n", b.MasterKeyFile)
	}
	if !b.Created {
		return
	}
	fmt.Fprintf(w, "First start: created the platform admin and the organization \"Default\" with its owner.\n")
	fmt.Fprintf(w, "  owner token: %s\n  admin token: %s\n", b.OwnerTokenFile, b.AdminTokenFile)
	fmt.Fprintf(w, "Try: export APPKEYS_URL=%s APPKEYS_TOKEN=$(cat %s)\n", srv.URL, b.OwnerTokenFile)
}
