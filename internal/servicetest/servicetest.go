// Package servicetest starts a real key service (real SQLite, real HTTP on
// 127.0.0.1) for other packages' tests.
package servicetest

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/store/pgtest"
	"github.com/appkeys/appkeys/internal/testclock"
	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// Service is a running key service for a test.
type Service struct {
	URL        string
	AdminToken string
	OwnerToken string
	DataDir    string
	// DatabaseURL is the PostgreSQL database's URL; empty on SQLite, whose
	// file is DataDir/appkeys.db.
	DatabaseURL string
	Server      *keyserver.Server

	t   testing.TB
	cfg keyserver.Config
}

// Option changes the test service's configuration.
type Option func(*keyserver.Config)

// WithLogger sends the service's logs to l.
func WithLogger(l *slog.Logger) Option { return func(c *keyserver.Config) { c.Logger = l } }

// WithDatabase uses a PostgreSQL URL instead of SQLite.
func WithDatabase(url string) Option { return func(c *keyserver.Config) { c.DatabaseURL = url } }

// Clock is a settable clock for a test service (and so for its key
// expiries and console sessions).
type Clock = testclock.Clock

// NewClock returns a clock that reads t until moved.
func NewClock(t time.Time) *Clock { return testclock.New(t) }

// WithClock runs the service on c's time.
func WithClock(c *Clock) Option { return func(cfg *keyserver.Config) { cfg.Now = c.Now } }

// WithTLS serves HTTPS (and so HTTP/2) with a certificate for 127.0.0.1
// from a CA made for the test; clients trust the returned pool.
func WithTLS(tb testing.TB) (Option, *x509.CertPool) {
	tb.Helper()
	ca := verifytest.NewCA(tb, "appkeys test CA")
	_, pems := ca.IssuePEM(tb, "127.0.0.1")
	dir := tb.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, b := range map[string][]byte{certFile: pems[0], keyFile: pems[1]} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return func(c *keyserver.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile }, ca.Pool()
}

// LogBuffer is a log sink that tests may read while a service's
// goroutines write to it.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WithConfig edits the configuration directly.
func WithConfig(fn func(*keyserver.Config)) Option { return Option(fn) }

// EnvStore selects the store of every test service: "postgres" runs them on
// a fresh database of the make test cluster (see pgtest); anything else,
// SQLite. make test runs the end-to-end suites once with each.
const EnvStore = "APPKEYS_TEST_STORE"

// Start runs a key service on a fresh SQLite database in a temp directory
// (or PostgreSQL, see EnvStore), listening on 127.0.0.1:0. It is stopped
// when the test ends.
func Start(t testing.TB, opts ...Option) *Service {
	t.Helper()
	cfg := keyserver.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), FeedPoll: 20 * time.Millisecond}
	if os.Getenv(EnvStore) == "postgres" {
		cfg.DatabaseURL = pgtest.NewDatabase(t)
	}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Service{t: t, cfg: cfg, DataDir: cfg.DataDir, DatabaseURL: cfg.DatabaseURL}
	s.start()
	s.AdminToken = s.Server.Bootstrap.AdminToken
	s.OwnerToken = s.Server.Bootstrap.OwnerToken
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Service) start() {
	s.t.Helper()
	srv, err := keyserver.Start(context.Background(), s.cfg)
	if err != nil {
		s.t.Fatalf("start key service: %v", err)
	}
	s.Server = srv
	s.URL = srv.URL
}

// Stop stops the service; the data stays for Restart. Stopping twice is a
// no-op.
func (s *Service) Stop() {
	if s.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Server.Close(ctx); err != nil {
		s.t.Logf("stop key service: %v", err)
	}
	s.Server = nil
}

// Restart starts the service again on the same address and data.
func (s *Service) Restart() {
	s.t.Helper()
	s.Stop()
	s.cfg.Addr = strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger for a moment
		var srv *keyserver.Server
		srv, err = keyserver.Start(context.Background(), s.cfg)
		if err == nil {
			s.Server = srv
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("restart key service: %v", err)
}
