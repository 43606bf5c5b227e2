package verify

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// limitedKey makes a valid key with limits known to svc.
func limitedKey(t testing.TB, svc *fakeService, id string, r Rate, nets ...string) string {
	t.Helper()
	k := svc.addKey(t, testApp, id, time.Time{})
	svc.mu.Lock()
	res := svc.keys[k]
	svc.mu.Unlock()
	res.Rate = r
	for _, n := range nets {
		res.AllowedNets = append(res.AllowedNets, netip.MustParsePrefix(n))
	}
	svc.setResult(k, res)
	return k
}

// A client over its key's limit: the bucket is the key's, taken from the
// cache with no call to the key service; past the burst each request is
// refused with the wait until the next one, and time refills it at the
// limit's pace, never more.
func TestLimitsRateFromCache(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{Now: clk.Now}, svc, nil)
	k := limitedKey(t, svc, "key_rate", Rate{Requests: 5, Per: time.Second})
	d, err := e.Check(context.Background(), k)
	if err != nil || !d.Valid || d.Limits == nil {
		t.Fatalf("first check: %+v, %v", d, err)
	}
	if got := d.Limits.Policy(); got != `"key";q=5;w=1` {
		t.Fatalf("policy %q", got)
	}
	for i := range 5 {
		d, ok := e.Cached(k)
		if !ok {
			t.Fatal("not cached")
		}
		if ok, _ := d.Limits.Take(clk.Now()); !ok {
			t.Fatalf("request %d of the burst of 5 refused", i+1)
		}
	}
	d, _ = e.Cached(k)
	ok, wait := d.Limits.Take(clk.Now())
	if ok || wait <= 0 || wait > 200*time.Millisecond {
		t.Fatalf("the 6th request in the same instant: %t, wait %v; want refused, wait ≤ 200ms", ok, wait)
	}
	clk.Add(wait)
	if ok, _ := d.Limits.Take(clk.Now()); !ok {
		t.Fatal("refused after waiting as told")
	}
	if ok, _ := d.Limits.Take(clk.Now()); ok {
		t.Fatal("a second request after one request's wait")
	}
	if n := svc.callsFor(k); n != 1 {
		t.Fatalf("%d calls to the key service; the limit must be enforced from the cache", n)
	}
	if got := RefusedField(1); got != `"key";r=0;t=1` {
		t.Fatalf("RateLimit field %q", got)
	}
}

// A refresh of the cached answer (CacheTTL passed) keeps the bucket when
// the limits are the same: otherwise every refresh would refill it. New
// limits bring a new bucket.
func TestLimitsBucketSurvivesRefresh(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{Now: clk.Now, CacheTTL: time.Minute}, svc, nil)
	k := limitedKey(t, svc, "key_refresh", Rate{Requests: 2, Per: time.Hour})
	d1, _ := e.Check(context.Background(), k)
	d1.Limits.Take(clk.Now())
	d1.Limits.Take(clk.Now())
	clk.Add(2 * time.Minute)
	d2, err := e.Check(context.Background(), k)
	if err != nil || d2.Source != SourceService {
		t.Fatalf("refresh: %+v, %v", d2, err)
	}
	if d2.Limits != d1.Limits {
		t.Fatal("the refresh made a new bucket")
	}
	if ok, _ := d2.Limits.Take(clk.Now()); ok {
		t.Fatal("a refresh refilled the bucket")
	}
	// New limits from the key service: a new bucket at the new size.
	limitedKeyResult(svc, k, Rate{Requests: 10, Per: time.Hour})
	clk.Add(2 * time.Minute)
	d3, _ := e.Check(context.Background(), k)
	if d3.Limits == d1.Limits || d3.Limits.Policy() != `"key";q=10;w=3600` {
		t.Fatalf("new limits: %q", d3.Limits.Policy())
	}
}

func limitedKeyResult(svc *fakeService, k string, r Rate) {
	svc.mu.Lock()
	res := svc.keys[k]
	res.Rate = r
	svc.keys[k] = res
	svc.mu.Unlock()
}

// Networks: a client outside them is refused, however it writes its
// address; an unknown address is refused when the key has networks.
func TestLimitsNetworks(t *testing.T) {
	l := newLimits(Rate{}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}, 1)
	cases := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true}, // IPv4-mapped: the same client
		{"2001:db8::1", true},
		{"11.0.0.1", false},
		{"192.168.1.1", false},
		{"2001:db9::1", false},
		{"::ffff:11.0.0.1", false},
		{"::1", false},
		{"", false}, // unknown
	}
	for _, c := range cases {
		var a netip.Addr
		if c.addr != "" {
			a = netip.MustParseAddr(c.addr)
		}
		if got := l.Permits(a); got != c.want {
			t.Errorf("Permits(%q) = %t, want %t", c.addr, got, c.want)
		}
	}
	if ok, _ := l.Take(time.Now()); !ok {
		t.Fatal("networks alone limit no rate")
	}
	var none *Limits
	if !none.Permits(netip.Addr{}) || none.Restricted() {
		t.Fatal("no limits restrict nothing")
	}
	if ok, _ := none.Take(time.Now()); !ok {
		t.Fatal("no limits limit no rate")
	}
}

// limit_share divides the limit among replicas: each allows its part, at
// least one request.
func TestLimitShare(t *testing.T) {
	for _, c := range []struct {
		requests, share int
		policy          string
	}{
		{5, 1, `"key";q=5;w=1`},
		{100, 3, `"key";q=33;w=1`},
		{2, 3, `"key";q=1;w=1`},
	} {
		l := newLimits(Rate{Requests: c.requests, Per: time.Second}, nil, c.share)
		if l.Policy() != c.policy {
			t.Errorf("%d/s shared by %d: %q, want %q", c.requests, c.share, l.Policy(), c.policy)
		}
	}
	if _, err := NewEngine(Config{App: testApp, LimitShare: -1}, newFakeService(), nil); err == nil {
		t.Fatal("a negative share was accepted")
	}
}

// A key.updated event drops the cached answer, so the next request asks
// the key service and gets the new limits.
func TestFeedKeyUpdatedDropsAnswer(t *testing.T) {
	clk := newClock()
	svc := newFakeService()
	e := newTestEngine(t, Config{CacheTTL: time.Hour, Now: clk.Now}, svc, nil)
	k := limitedKey(t, svc, "key_up", Rate{Requests: 5, Per: time.Second})
	src := newScriptedSource()
	src.push(page(10))
	f := startFeed(t, src, clk, nil)
	defer e.Follow(f)()
	eventually(t, "feed up", func() bool { return f.Stats().Up })
	e.Check(context.Background(), k)
	limitedKeyResult(svc, k, Rate{})
	src.push(page(11, Event{Seq: 11, Type: EventKeyUpdated, KeyID: "key_up", AppID: testApp, At: clk.Now()}))
	eventually(t, "key.updated applied", func() bool { return f.Stats().LastSeq == 11 })
	if _, ok := e.Cached(k); ok {
		t.Fatal("the answer with the old limits is still cached")
	}
	d, err := e.Check(context.Background(), k)
	if err != nil || !d.Valid || d.Limits != nil || svc.callsFor(k) != 2 {
		t.Fatalf("after key.updated: %+v, %v, %d calls", d, err, svc.callsFor(k))
	}
}

// A lying or broken key service's limits make the answer unusable: the
// key is not admitted without them.
func TestDecodeLimits(t *testing.T) {
	valid := `{"valid":true,"code":"VALID","key_id":"key_1","key_name":"n","app_id":"app_test","expires_at":"2099-01-01T00:00:00Z"`
	for _, tail := range []string{
		`,"rate_limit":{"requests":0,"per":"1s"}}`,
		`,"rate_limit":{"requests":-1,"per":"1s"}}`,
		`,"rate_limit":{"requests":5,"per":"2s"}}`,
		`,"rate_limit":{"requests":5}}`,
		`,"allowed_cidrs":["10.0.0.1/8"]}`,
		`,"allowed_cidrs":["nope"]}`,
		`,"allowed_cidrs":"10.0.0.0/8"}`,
	} {
		_, err := decodeVerifyAnswer([]byte(valid + tail))
		var bad *BadAnswerError
		if !errors.As(err, &bad) {
			t.Errorf("%s: %v, want a bad answer", tail, err)
		}
	}
	r, err := decodeVerifyAnswer([]byte(valid + `,"rate_limit":{"requests":5,"per":"1m"},"allowed_cidrs":["10.0.0.0/8"]}`))
	if err != nil || r.Rate != (Rate{Requests: 5, Per: time.Minute}) || len(r.AllowedNets) != 1 || r.AllowedNets[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Fatalf("good limits: %+v, %v", r, err)
	}
}

// benchRate is a rate limit the benchmarks never reach: they take tokens
// faster than the service's own bound of a million a second would refill.
const benchRate = 1_000_000_000

// BenchmarkLimitsTake is the limiter's fast path: a request within the
// limit. Target: 0 allocs/op.
func BenchmarkLimitsTake(b *testing.B) {
	l := newLimits(Rate{Requests: benchRate, Per: time.Second}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, 1)
	addr := netip.MustParseAddr("10.1.2.3")
	b.ReportAllocs()
	for b.Loop() {
		if !l.Permits(addr) {
			b.Fatal("refused the address")
		}
		if ok, _ := l.Take(time.Now()); !ok {
			b.Fatal("refused within the limit")
		}
	}
}

// BenchmarkCachedHitLimited is the sidecar's cache hit with a rate limit
// enforced: Cached, then Take. Target: 0 allocs/op.
func BenchmarkCachedHitLimited(b *testing.B) {
	svc := newFakeService()
	e := newTestEngine(b, Config{}, svc, NopObserver{})
	k := limitedKey(b, svc, "key_bench", Rate{Requests: benchRate, Per: time.Second})
	if d, err := e.Check(context.Background(), k); err != nil || !d.Valid {
		b.Fatal(d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, ok := e.Cached(k)
		if !ok {
			b.Fatal("not a cache hit")
		}
		if ok, _ := d.Limits.Take(time.Now()); !ok {
			b.Fatal("refused within the limit")
		}
	}
}

// BenchmarkCachedHitLimitedParallel is BenchmarkCachedHitLimited with every
// goroutine on the one key, as a client hammering a sidecar: the key's
// bucket is shared, so its lock is contended.
func BenchmarkCachedHitLimitedParallel(b *testing.B) {
	svc := newFakeService()
	e := newTestEngine(b, Config{}, svc, NopObserver{})
	k := limitedKey(b, svc, "key_bench", Rate{Requests: benchRate, Per: time.Second})
	if d, err := e.Check(context.Background(), k); err != nil || !d.Valid {
		b.Fatal(d, err)
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, ok := e.Cached(k)
			if !ok {
				b.Fatal("not a cache hit")
			}
			d.Limits.Take(time.Now())
		}
	})
}
