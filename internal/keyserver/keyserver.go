// Package keyserver assembles a running key service: it opens the store,
// loads the master key, bootstraps an empty store, and serves the API on a
// listener. `appkeys serve`, `appkeys up` and the tests all start it here.
package keyserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/appkeys/appkeys/internal/httpapi"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/store"
	"github.com/appkeys/appkeys/internal/webhook"
)

// Config configures a key service.
type Config struct {
	// Addr is the listen address, such as 127.0.0.1:8700.
	Addr string
	// DataDir holds the SQLite database (unless DatabaseURL is set), the
	// generated master key and the bootstrap token files.
	DataDir string
	// DatabaseURL, when set, is a postgres:// URL used instead of SQLite.
	DatabaseURL string
	// MasterKey is the base64 master key (APPKEYS_MASTER_KEY); when empty it
	// is read from, or generated into, DataDir/master.key.
	MasterKey string
	// AdminToken and BootstrapToken fix the bootstrap tokens
	// (APPKEYS_ADMIN_TOKEN, APPKEYS_BOOTSTRAP_TOKEN) instead of random ones.
	AdminToken     string
	BootstrapToken string
	MaxKeyLifetime time.Duration
	Logger         *slog.Logger
	// Console, when set, mounts the web console on the API's mux.
	Console func(svc *keyservice.Service, mux *http.ServeMux)
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
	// FeedPoll overrides how often the feed head is polled.
	FeedPoll time.Duration
	// UsageRetention is how long hourly usage buckets are kept
	// (keyservice.DefaultUsageRetention when zero).
	UsageRetention time.Duration
	// KeyCountEvery overrides how often keys are counted by state for
	// metrics (keyservice.DefaultKeyCountEvery).
	KeyCountEvery time.Duration
	// VerifyFailureRate and VerifyFailureBurst bound failed verifies per
	// app; DefaultVerifyFailureRate and DefaultVerifyFailureBurst when zero.
	VerifyFailureRate  float64
	VerifyFailureBurst int
	// LeakAction is what a verified leak report does to a live key:
	// keyservice.LeakRevoke (the default) or keyservice.LeakNotify.
	LeakAction string
	// LeakKeysURL or LeakKeysFile is where the public keys that sign
	// leak reports are read (serve's default is
	// keyservice.GitHubLeakKeysURL); with neither, POST /v1/leaks/github
	// refuses every report.
	LeakKeysURL, LeakKeysFile string
	// LeakReportRate and LeakReportBurst bound leak reports per client
	// address; the keyservice defaults when zero.
	LeakReportRate  float64
	LeakReportBurst int
	// MetricsAddr, when set, is a listen address that serves /metrics
	// alone (with TLS when the API has it); the API's listener then answers
	// 404 for /metrics.
	MetricsAddr string
	// TLSCertFile and TLSKeyFile, when both set, are a PEM certificate
	// (chain) and its key: the service then speaks HTTPS only. Sidecars
	// trust a private CA with the module's ca_file.
	TLSCertFile, TLSKeyFile string
	// HeldLongPolls keeps waiting long-polls in net/http, as before they
	// parked (httpapi.ParkingListener): for measuring one against the other.
	HeldLongPolls bool
	// WebhooksAllowPrivate lists the address prefixes webhook deliveries
	// may reach although they are not public (--webhooks-allow-private);
	// none by default.
	WebhooksAllowPrivate []netip.Prefix
	// WebhookPoll and WebhookExpiryEvery override how often the webhook
	// queue is looked at when idle and how often keys near expiry are
	// looked for (the webhook package's defaults when zero).
	WebhookPoll, WebhookExpiryEvery time.Duration
}

// Bootstrap tells what an empty store was given on first start.
type Bootstrap struct {
	Created        bool
	AdminToken     string // only when Created
	OwnerToken     string // only when Created
	AdminTokenFile string
	OwnerTokenFile string
	MasterKeyFile  string // set when the master key was generated now
}

// Server is a running key service.
type Server struct {
	URL       string
	Addr      net.Addr
	Bootstrap Bootstrap
	Service   *keyservice.Service
	Store     *store.Store
	// MetricsURL is where /metrics is served when Config.MetricsAddr is
	// set; empty otherwise.
	MetricsURL string

	http    *http.Server
	api     *httpapi.Server
	metrics *http.Server // nil without MetricsAddr
	cancel  context.CancelFunc
	done    chan struct{}
	served  chan error
}

// Start opens everything and begins serving. Stop with Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required (--data)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	master, generated, err := keyservice.LoadMasterKey(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	dsn := cfg.DatabaseURL
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "appkeys.db")
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %s", redactDSN(err.Error(), cfg.DatabaseURL))
	}
	reg := prometheus.NewRegistry()
	st.SetObserver(httpapi.StoreObserver(reg))
	svc, err := keyservice.New(keyservice.Config{
		Store: st, MasterKey: master, MaxKeyLifetime: cfg.MaxKeyLifetime, Logger: log, Now: cfg.Now, FeedPoll: cfg.FeedPoll,
		KeyCountEvery:     cfg.KeyCountEvery,
		UsageRetention:    cfg.UsageRetention,
		VerifyFailureRate: cfg.VerifyFailureRate, VerifyFailureBurst: cfg.VerifyFailureBurst,
		LeakAction: cfg.LeakAction, LeakKeysURL: cfg.LeakKeysURL, LeakKeysFile: cfg.LeakKeysFile,
		LeakReportRate: cfg.LeakReportRate, LeakReportBurst: cfg.LeakReportBurst,
		WebhookPolicy: webhook.Policy{AllowPrivate: cfg.WebhooksAllowPrivate},
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	boot := Bootstrap{
		AdminTokenFile: filepath.Join(cfg.DataDir, "admin.token"),
		OwnerTokenFile: filepath.Join(cfg.DataDir, "owner.token"),
	}
	if generated {
		boot.MasterKeyFile = filepath.Join(cfg.DataDir, "master.key")
	}
	writeTokens := func(admin, owner string) error {
		for path, tok := range map[string]string{boot.AdminTokenFile: admin, boot.OwnerTokenFile: owner} {
			if err := writeSecretFile(path, tok+"\n"); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
		}
		return nil
	}
	admin, owner, created, err := svc.Bootstrap(ctx, cfg.AdminToken, cfg.BootstrapToken, writeTokens)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if created {
		boot.Created, boot.AdminToken, boot.OwnerToken = true, admin, owner
	}
	var extra func(*http.ServeMux)
	if cfg.Console != nil {
		extra = func(mux *http.ServeMux) { cfg.Console(svc, mux) }
	}
	api := httpapi.New(svc, httpapi.Options{Logger: log, Registry: reg, Extra: extra, MetricsElsewhere: cfg.MetricsAddr != ""})
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:8700"
	}
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			ln.Close()
			st.Close()
			return nil, fmt.Errorf("listen on %s (--metrics-addr): %w", cfg.MetricsAddr, err)
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	scheme := "http://"
	if tlsConfig != nil {
		scheme = "https://"
	}
	s := &Server{
		URL: scheme + ln.Addr().String(), Addr: ln.Addr(), Bootstrap: boot, Service: svc, Store: st,
		cancel: cancel, done: make(chan struct{}), served: make(chan error, 1),
		http: &http.Server{
			Handler:           api,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      keyservice.MaxEventsWait + 30*time.Second, // long-polls
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return runCtx },
			TLSConfig:         tlsConfig,
		},
	}
	if metricsLn != nil {
		s.MetricsURL = scheme + metricsLn.Addr().String()
		s.metrics = &http.Server{
			Handler:           api.MetricsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			TLSConfig:         tlsConfig.Clone(), // each http.Server writes its own NextProtos into it
		}
		go func() {
			var err error
			if tlsConfig != nil {
				err = s.metrics.ServeTLS(metricsLn, "", "")
			} else {
				err = s.metrics.Serve(metricsLn)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener stopped", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
	}
	hooks, err := webhookWorker(cfg, svc, reg, log)
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	go func() {
		defer close(s.done)
		hooksDone := make(chan struct{})
		go func() {
			defer close(hooksDone)
			hooks.Run(runCtx)
		}()
		svc.Run(runCtx)
		<-hooksDone
	}()
	// Long-polls park off net/http while they wait (httpapi.ParkingListener),
	// on plain HTTP/1.1 and on TLS alike: the TLS listener is made here,
	// under the parking one, as ServeTLS would make it, so that a connection
	// handed back is not wrapped twice.
	if tlsConfig != nil {
		s.http.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
		ln = tls.NewListener(ln, s.http.TLSConfig)
	}
	s.api = api
	if !cfg.HeldLongPolls {
		parking := httpapi.NewParkingListener(ln)
		api.Park(runCtx, parking)
		ln = parking
	}
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// Close stops serving (letting requests in flight finish, long-polls
// ended), flushes last-used times and closes the store.
func (s *Server) Close(ctx context.Context) error {
	s.cancel() // ends long-polls, whose context derives from runCtx
	// Parked long-polls answer and hand their connections back to the
	// server, which Shutdown then closes as idle.
	err := s.api.WaitParked(ctx)
	err = errors.Join(err, s.http.Shutdown(ctx))
	if s.metrics != nil {
		err = errors.Join(err, s.metrics.Shutdown(ctx))
	}
	<-s.done
	if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, s.Store.Close())
}

// Wait blocks until the server stops serving on its own (a listener error).
func (s *Server) Wait() error {
	err := <-s.served
	s.served <- err
	return err
}

// redactDSN keeps a database password out of error messages.
func redactDSN(msg, dsn string) string {
	if dsn == "" {
		return msg
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		if j := strings.Index(dsn[i+3:], "@"); j >= 0 {
			userinfo := dsn[i+3 : i+3+j]
			if k := strings.Index(userinfo, ":"); k >= 0 {
				msg = strings.ReplaceAll(msg, userinfo[k+1:], "****")
			}
		}
	}
	return msg
}

// writeSecretFile writes a token file with mode 0600 and syncs it, through
// a temporary file and a rename, so a crash leaves the old file or the new
// one, never half of one.
func writeSecretFile(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// webhookWorker builds the worker that delivers webhooks, on the service's
// clock, dialling only what cfg allows.
func webhookWorker(cfg Config, svc *keyservice.Service, reg *prometheus.Registry, log *slog.Logger) (*webhook.Worker, error) {
	m, err := webhook.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	return webhook.NewWorker(webhook.Config{
		Queue: svc.WebhookQueue(), Client: webhook.NewClient(webhook.Policy{AllowPrivate: cfg.WebhooksAllowPrivate}, webhook.Timeout),
		Now: cfg.Now, Logger: log, Poll: cfg.WebhookPoll, ExpiryEvery: cfg.WebhookExpiryEvery, Metrics: m,
	}), nil
}
