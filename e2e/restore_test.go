package e2e

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestSidecarCursorAheadOfRestoredFeed is issue 12's item 5 end to end:
// the key service's database goes back in time (SQLite: the file restored
// from a backup; PostgreSQL: a failover that lost the last commits) while
// the sidecar keeps the cursor it had. Revocations made after that are
// numbered at or below the sidecar's cursor; the key service answers the
// cursor 410, and the sidecar purges its cache and starts again from the
// head, so a key revoked after the restore is refused within a bound
// though cache_ttl is 10 minutes.
func TestSidecarCursorAheadOfRestoredFeed(t *testing.T) {
	s := newStack(t)
	p := newKSProxy(t, s.ks.URL)
	ctx := context.Background()
	a := s.app("restored")
	// Nothing but the feed can refuse a cached key here.
	site := s.site(a, "cache_ttl 10m", "feed_down_revalidate 10m")
	s.load(p.URL, site)
	waitFor(t, 5*time.Second, "a feed poll in flight", func() bool { return p.polls(a.VerifierToken) == 1 })
	revoked := s.key(nil, a.ID, time.Now().Add(time.Hour))
	kept := s.key(nil, a.ID, time.Now().Add(time.Hour))
	for _, k := range []*client.CreatedKey{revoked, kept} {
		if got := s.get(site, "X-API-Key", k.PlainKey); got.status != 200 {
			t.Fatalf("before the backup: %d", got.status)
		}
	}
	applied := func() float64 {
		return metric(adminMetrics(t), "appkey_auth_revocations_applied_total", "app", a.ID)
	}

	restore := backup(t, s.ks)

	// Revocations after the backup move the sidecar's cursor past what the
	// restored database will hold.
	before := applied()
	for range 3 {
		k := s.key(nil, a.ID, time.Now().Add(time.Hour))
		if err := s.owner.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "3 revocations applied", func() bool { return applied()-before == 3 })

	restore()
	if err := s.owner.RevokeKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	took := s.waitStatus(site, revoked.PlainKey, 401, 20*time.Second, 200)
	t.Logf("a key revoked after the restore was refused %s after its revoke", took.Round(time.Millisecond))

	// The subscriber started over from the head once, and purged its cache:
	// the key left alone is asked of the key service again, and still good.
	if h := p.heads.Load(); h != 2 {
		t.Errorf("the subscriber started from the head %d times; want 2 (its start, and once after the 410)", h)
	}
	misses := metric(adminMetrics(t), "appkey_auth_cache_misses_total", "app", a.ID)
	if got := s.get(site, "X-API-Key", kept.PlainKey); got.status != 200 {
		t.Fatalf("the key left alone after the restore: %d", got.status)
	}
	if d := metric(adminMetrics(t), "appkey_auth_cache_misses_total", "app", a.ID) - misses; d != 1 {
		t.Errorf("the key left alone was a cache miss %v times; want 1 (the cache purged at the resync)", d)
	}
}

// backup saves the key service's feed as it is now and returns a function
// that stops the service, puts the feed back, and starts the service again.
// On SQLite it copies the database file, the service stopped, and restores
// the copy whole; on PostgreSQL it plays a failover that lost the commits
// since: the events after today's head are gone and the counter reset.
func backup(t *testing.T, ks *servicetest.Service) (restore func()) {
	t.Helper()
	if ks.DatabaseURL != "" {
		db, err := sql.Open("pgx", ks.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		var head int64
		if err := db.QueryRow(`SELECT value FROM counters WHERE name = 'event_seq'`).Scan(&head); err != nil {
			t.Fatal(err)
		}
		return func() {
			ks.Stop()
			for _, q := range []string{`DELETE FROM events WHERE seq > $1`, `UPDATE counters SET value = $1 WHERE name = 'event_seq'`} {
				if _, err := db.Exec(q, head); err != nil {
					t.Fatal(err)
				}
			}
			ks.Restart()
		}
	}
	saved := t.TempDir()
	files := []string{"appkeys.db", "appkeys.db-wal", "appkeys.db-shm"}
	ks.Stop()
	for _, f := range files {
		copyFile(t, filepath.Join(ks.DataDir, f), filepath.Join(saved, f))
	}
	ks.Restart()
	return func() {
		ks.Stop()
		for _, f := range files {
			copyFile(t, filepath.Join(saved, f), filepath.Join(ks.DataDir, f))
		}
		ks.Restart()
	}
}

// copyFile copies src to dst; a missing src removes dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
