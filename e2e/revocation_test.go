package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// TestRevocationLatency is issue 4's promise with cache_ttl 10m: from the
// 204 of a revoke, an app deletion or a creator deletion to the sidecar's
// first 401, p99 under a second. go run ./bench/revocation measures the same
// standalone.
func TestRevocationLatency(t *testing.T) {
	s := newStack(t)
	keys, apps, creators, rolls := 100, 20, 20, 10
	if testing.Short() {
		keys, apps, creators, rolls = 20, 5, 5, 3
	}
	rep, err := MeasureRevocations(context.Background(), RevocationConfig{
		KeyService: s.ks.URL, OwnerToken: s.ks.OwnerToken, Admin: admin,
		Load: s.harnessLoad,
		Keys: keys, Apps: apps, Creators: creators, Rolls: rolls,
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Cases() {
		t.Logf("%-42s %s", c.Name, c.Latencies)
	}
	if err := rep.Check(time.Second); err != nil {
		t.Error(err)
	}
}

// TestKeyServiceRestartMidRevocations: keys revoked while the sidecar
// cannot hear of it, just before the key service stops, and just after it
// is back, are all refused by the sidecar without help: no event is lost
// across the restart, and the keys left alone keep working.
func TestKeyServiceRestartMidRevocations(t *testing.T) {
	s := newStack(t)
	p := newKSProxy(t, s.ks.URL)
	ctx := context.Background()
	a := s.app("restarted")
	// Nothing but the feed can refuse a cached key here: a long cache_ttl,
	// and no revalidation while the feed is down.
	site := s.site(a, "cache_ttl 10m", "feed_down_revalidate 10m")
	s.load(p.URL, site)
	waitFor(t, 5*time.Second, "a feed poll in flight", func() bool { return p.polls(a.VerifierToken) == 1 })
	keys := make([]*client.CreatedKey, 12)
	for i := range keys {
		keys[i] = s.key(nil, a.ID, time.Now().Add(time.Hour))
		if got := s.get(site, "X-API-Key", keys[i].PlainKey); got.status != 200 {
			t.Fatalf("key %d: %d", i, got.status)
		}
	}
	applied := func() float64 {
		return metric(adminMetrics(t), "appkey_auth_revocations_applied_total", "app", a.ID)
	}
	before := applied()

	// The sidecar's subscriber is cut off while the first five are
	// revoked, so their events wait in the key service across its restart.
	p.cutFeed()
	for _, k := range keys[:5] {
		if err := s.owner.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys[:5] {
		if got := s.get(site, "X-API-Key", k.PlainKey); got.status != 200 {
			t.Fatalf("revoked key %d refused before its event could arrive (%d): the test proves nothing", i, got.status)
		}
	}
	s.ks.Stop()
	s.ks.Restart()
	restarted := time.Now()
	p.failEvents.Store(false)
	for _, k := range keys[5:10] {
		if err := s.owner.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys[:10] {
		s.waitStatus(site, k.PlainKey, 401, 15*time.Second, 200)
		if i == 9 {
			t.Logf("all 10 revoked keys refused %s after the restart", time.Since(restarted).Round(time.Millisecond))
		}
	}
	for i, k := range keys[10:] {
		if got := s.get(site, "X-API-Key", k.PlainKey); got.status != 200 {
			t.Errorf("untouched key %d: %d after the restart", i, got.status)
		}
	}
	if d := applied() - before; d != 10 {
		t.Errorf("appkey_auth_revocations_applied_total grew by %v, want 10", d)
	}
	if h := p.heads.Load(); h != 1 {
		t.Errorf("the subscriber started over from the head %d times; want it to resume from its cursor", h-1)
	}
}

// TestFeedDownRevocation: with the change feed failing while verify works,
// a cached key revoked at the key service is refused within
// feed_down_revalidate (plus a margin for one verify call).
func TestFeedDownRevocation(t *testing.T) {
	s := newStack(t)
	p := newKSProxy(t, s.ks.URL)
	p.failEvents.Store(true)
	ctx := context.Background()
	a := s.app("feedless")
	const revalidate = time.Second
	site := s.site(a, "cache_ttl 10m", "feed_down_revalidate 1s")
	s.load(p.URL, site)
	revoked := s.key(nil, a.ID, time.Now().Add(time.Hour))
	kept := s.key(nil, a.ID, time.Now().Add(time.Hour))
	for _, k := range []*client.CreatedKey{revoked, kept} {
		if got := s.get(site, "X-API-Key", k.PlainKey); got.status != 200 {
			t.Fatalf("before: %d", got.status)
		}
	}
	if err := s.owner.RevokeKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	took := s.waitStatus(site, revoked.PlainKey, 401, 10*time.Second, 200)
	t.Logf("revoked key refused %s after the revoke, feed down, feed_down_revalidate %s", took.Round(time.Millisecond), revalidate)
	if took > revalidate+time.Second {
		t.Errorf("revoked key refused after %s; want within feed_down_revalidate (%s) plus a margin", took, revalidate)
	}
	if got := s.get(site, "X-API-Key", kept.PlainKey); got.status != 200 {
		t.Errorf("a valid key while the feed is down: %d", got.status)
	}

	// The feed back: revocations arrive through it again, well before the
	// revalidation bound would matter.
	p.failEvents.Store(false)
	waitFor(t, 15*time.Second, "feed poll in flight", func() bool { return p.polls(a.VerifierToken) >= 1 })
	if err := s.owner.RevokeKey(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	took = s.waitStatus(site, kept.PlainKey, 401, 10*time.Second, 200)
	t.Logf("with the feed back, a revoked key was refused %s after the revoke", took.Round(time.Millisecond))
}
