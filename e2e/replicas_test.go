package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
	"github.com/appkeys/appkeys/internal/store/pgtest"
)

// TestSidecarAcrossReplicas: two key services on one PostgreSQL database,
// the sidecar subscribed to replica A's change feed. Keys are revoked
// through A and through B at once while both also take unrelated writes;
// the sidecar refuses every revoked key within a second of its 204, applies
// each revocation exactly once, and keeps letting the other keys in.
func TestSidecarAcrossReplicas(t *testing.T) {
	db := pgtest.NewDatabase(t)
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	master := base64.StdEncoding.EncodeToString(raw)
	sameDB := func(c *keyserver.Config) { c.DatabaseURL, c.MasterKey = db, master }
	s := newStack(t, servicetest.WithConfig(sameDB))
	b := servicetest.Start(t, servicetest.WithConfig(sameDB))
	if b.OwnerToken != "" {
		t.Fatal("replica B bootstrapped a second time")
	}
	ctx := context.Background()
	ownerB, err := client.New(b.URL, s.ks.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	replicas := []*client.Client{s.owner, ownerB}

	a := s.app("replicated")
	busy := s.app("busy")
	site := s.site(a, "cache_ttl 10m")
	s.load(s.ks.URL, site) // subscribed through A only
	applied := func() float64 {
		return metric(adminMetrics(t), "appkey_auth_revocations_applied_total", "app", a.ID)
	}

	// Keys made through both replicas, each let in (and cached) by the
	// sidecar before any is revoked.
	const perReplica = 15
	keys := make([][]*client.CreatedKey, len(replicas))
	for r, c := range replicas {
		for range perReplica {
			k := s.key(c, a.ID, time.Now().Add(time.Hour))
			keys[r] = append(keys[r], k)
			if got := s.get(site, "X-API-Key", k.PlainKey); got.status != http.StatusOK {
				t.Fatalf("key made through replica %c: %d %s", 'A'+r, got.status, got.body)
			}
		}
	}
	kept := s.key(ownerB, a.ID, time.Now().Add(time.Hour))
	before := applied()

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies = make([][]time.Duration, len(replicas))
		errs      []error
		stop      = make(chan struct{})
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Unrelated writers on both replicas: creates and revokes on another
	// app, so that both replicas take event numbers all the time.
	for r, c := range replicas {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, err := c.CreateKey(ctx, busy.ID, client.CreateKeyRequest{Name: fmt.Sprintf("busy-%c-%d", 'A'+r, i), ExpiresAt: time.Now().Add(time.Hour)})
				if err == nil {
					err = c.RevokeKey(ctx, k.ID)
				}
				if err != nil {
					fail(fmt.Errorf("writer on replica %c: %w", 'A'+r, err))
					return
				}
			}
		})
	}
	// Revokers on both replicas, each timing its keys from the 204 to the
	// sidecar's first 401.
	var revokers sync.WaitGroup
	for r, c := range replicas {
		revokers.Go(func() {
			for _, k := range keys[r] {
				if err := c.RevokeKey(ctx, k.ID); err != nil {
					fail(fmt.Errorf("revoke through replica %c: %w", 'A'+r, err))
					return
				}
				took, err := s.untilRefused(site, k.PlainKey, 5*time.Second)
				if err != nil {
					fail(fmt.Errorf("key revoked through replica %c: %w", 'A'+r, err))
					return
				}
				mu.Lock()
				latencies[r] = append(latencies[r], took)
				mu.Unlock()
			}
		})
	}
	revokers.Wait()
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for r, l := range latencies {
		slices.Sort(l)
		t.Logf("revoked through replica %c, sidecar on A: %d keys, p50 %s, max %s", 'A'+r, len(l), l[len(l)/2].Round(time.Millisecond), l[len(l)-1].Round(time.Millisecond))
		if l[len(l)-1] > time.Second {
			t.Errorf("a key revoked through replica %c was let in %s after its revoke; the bound is 1s", 'A'+r, l[len(l)-1])
		}
	}
	// Each revocation applied exactly once: none doubled, none skipped. A
	// last revoke, begun after every other one was acknowledged, has the
	// highest event number; the feed applies in order, so once the sidecar
	// refuses its key, any doubled event would have been applied too.
	sentinel := s.key(ownerB, a.ID, time.Now().Add(time.Hour))
	if got := s.get(site, "X-API-Key", sentinel.PlainKey); got.status != http.StatusOK {
		t.Fatalf("sentinel key: %d", got.status)
	}
	if err := ownerB.RevokeKey(ctx, sentinel.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.untilRefused(site, sentinel.PlainKey, 5*time.Second); err != nil {
		t.Fatalf("sentinel key: %v", err)
	}
	want := float64(len(replicas)*perReplica + 1)
	if got := applied() - before; got != want {
		t.Errorf("appkey_auth_revocations_applied_total grew by %v, want %v", got, want)
	}
	if got := s.get(site, "X-API-Key", kept.PlainKey); got.status != http.StatusOK {
		t.Errorf("the key nobody revoked: %d %s", got.status, got.body)
	}
}

// untilRefused polls site with key until it answers 401 and returns how
// long that took; any answer but 200 or 401, or no 401 within bound, is an
// error. It may run on any goroutine.
func (s *stack) untilRefused(site Site, key string, bound time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		a, err := s.try(site, "X-API-Key", key)
		switch {
		case err != nil:
			return 0, err
		case a.status == http.StatusUnauthorized:
			return time.Since(start), nil
		case a.status != http.StatusOK:
			return 0, fmt.Errorf("answered %d (%s) while waiting for 401", a.status, a.body)
		case time.Since(start) > bound:
			return 0, fmt.Errorf("still let in %s after its revoke", bound)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
