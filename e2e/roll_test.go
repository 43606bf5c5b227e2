package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// feedUp proves the site's feed subscriber is following: a cached key,
// revoked, is refused.
func (s *stack) feedUp(site Site) {
	s.t.Helper()
	k := s.key(nil, site.App, time.Now().Add(time.Hour))
	if got := s.get(site, "X-API-Key", k.PlainKey); got.status != 200 {
		s.t.Fatalf("warm-up key: %d", got.status)
	}
	if err := s.owner.RevokeKey(context.Background(), k.ID); err != nil {
		s.t.Fatal(err)
	}
	s.waitStatus(site, k.PlainKey, 401, 10*time.Second, 200)
}

func (s *stack) roll(id string, overlap string) *client.RolledKey {
	s.t.Helper()
	r, err := s.owner.RollKey(context.Background(), id, client.RollKeyRequest{ExpiresAt: time.Now().Add(24 * time.Hour), Overlap: overlap})
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// switcher is a client of the sidecar that sends the old key until its
// switch time, then the new one, and counts the answers that are not 200.
type switcher struct {
	at       time.Time
	requests int
	failed   []string
}

func (sw *switcher) run(s *stack, site Site, oldKey, newKey string, until time.Time) {
	for time.Now().Before(until) {
		key := oldKey
		if !time.Now().Before(sw.at) {
			key = newKey
		}
		a, err := s.try(site, "X-API-Key", key)
		sw.requests++
		switch {
		case err != nil:
			sw.failed = append(sw.failed, err.Error())
		case a.status != 200:
			sw.failed = append(sw.failed, fmt.Sprintf("%d with the %s key", a.status, map[bool]string{true: "old", false: "new"}[key == oldKey]))
		}
	}
}

// Issue 14, through a real Caddy with cache_ttl 1h: a key rolled with a 2 s
// overlap. During the overlap both keys pass; clients that switch from the
// old key to the new one anywhere in it see no failed request; the old key
// is refused within a second of the overlap's end (the feed's
// key.expiry_changed shortened the cached entry: with cache_ttl 1h nothing
// else would); the new key keeps working.
func TestRollOverlapAtTheSidecar(t *testing.T) {
	s := newStack(t)
	a := s.app("rolled")
	site := s.site(a, "cache_ttl 1h")
	s.load(s.ks.URL, site)
	s.feedUp(site)
	old := s.key(nil, a.ID, time.Now().Add(24*time.Hour))
	if got := s.get(site, "X-API-Key", old.PlainKey); got.status != 200 {
		t.Fatalf("old key before the roll: %d", got.status)
	}

	rolled := s.roll(old.ID, "2s")
	end := rolled.Previous.ExpiresAt
	if left := time.Until(end); left < 1500*time.Millisecond || left > 3*time.Second {
		t.Fatalf("the overlap ends in %s; want about 2 s", left)
	}
	// Eight clients switch at points spread over the overlap, the last
	// just before its end, and keep going past it with the new key.
	const n = 8
	start := time.Now()
	span := end.Add(-100 * time.Millisecond).Sub(start)
	clients := make([]*switcher, n)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &switcher{at: start.Add(span * time.Duration(i) / (n - 1))}
		wg.Go(func() { clients[i].run(s, site, old.PlainKey, rolled.PlainKey, end.Add(500*time.Millisecond)) })
	}
	// Both keys pass during the overlap.
	for time.Until(end) > 200*time.Millisecond {
		for name, k := range map[string]string{"old": old.PlainKey, "new": rolled.PlainKey} {
			if got := s.get(site, "X-API-Key", k); got.status != 200 {
				t.Errorf("%s key during the overlap (%s left): %d", name, time.Until(end), got.status)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Up to the end the old key passes; from it on, it is refused within a
	// second.
	time.Sleep(time.Until(end))
	refusedAfter := s.waitStatus(site, old.PlainKey, 401, time.Second, 200)
	t.Logf("the old key was refused %s after the overlap's end", refusedAfter.Round(time.Millisecond))
	wg.Wait()
	total := 0
	for i, c := range clients {
		total += c.requests
		if len(c.failed) > 0 {
			t.Errorf("client %d (switched %s into the overlap): %d of %d requests failed: %v", i, c.at.Sub(start).Round(time.Millisecond), len(c.failed), c.requests, c.failed[:min(5, len(c.failed))])
		}
	}
	t.Logf("%d requests from %d switching clients, none failed", total, n)
	if got := s.get(site, "X-API-Key", rolled.PlainKey); got.status != 200 {
		t.Fatalf("new key after the overlap: %d", got.status)
	}
}

// A key whose own expiry comes before the overlap's end keeps that earlier
// expiry: rolled with an hour of overlap, it is refused at the sidecar
// when it expires, not an hour later.
func TestRollKeepsEarlierExpiryAtTheSidecar(t *testing.T) {
	s := newStack(t)
	a := s.app("expiring")
	site := s.site(a, "cache_ttl 1h")
	s.load(s.ks.URL, site)
	s.feedUp(site)
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	old := s.key(nil, a.ID, exp)
	if got := s.get(site, "X-API-Key", old.PlainKey); got.status != 200 {
		t.Fatalf("old key before the roll: %d", got.status)
	}
	rolled := s.roll(old.ID, "1h")
	if !rolled.Previous.ExpiresAt.Equal(exp) {
		t.Fatalf("the roll moved the old key's expiry from %v to %v", exp, rolled.Previous.ExpiresAt)
	}
	time.Sleep(time.Until(exp.Add(-300 * time.Millisecond)))
	if got := s.get(site, "X-API-Key", old.PlainKey); got.status != 200 {
		t.Fatalf("old key before its own expiry: %d", got.status)
	}
	time.Sleep(time.Until(exp))
	s.waitStatus(site, old.PlainKey, 401, time.Second, 200)
	if got := s.get(site, "X-API-Key", rolled.PlainKey); got.status != 200 {
		t.Fatalf("new key: %d", got.status)
	}
}
