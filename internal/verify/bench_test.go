package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkCheckCacheHit is the sidecar's hot path: parse, fingerprint and
// a fresh cache entry. Target: under 1 µs and 0 allocs/op.
func BenchmarkCheckCacheHit(b *testing.B) {
	svc := newFakeService()
	e := newTestEngine(b, Config{}, svc, NopObserver{})
	key := svc.addKey(b, testApp, "key_01J9ZX3B4C5D6E7F8G9H0JKMNP", time.Time{})
	ctx := context.Background()
	if d, err := e.Check(ctx, key); err != nil || !d.Valid {
		b.Fatal(d, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d, _ := e.Check(ctx, key)
		if d.Source != SourceCache {
			b.Fatal("not a cache hit")
		}
	}
}

// BenchmarkCachedHit is the sidecar's first look at every request: a key
// already held as valid. Target: 0 allocs/op.
func BenchmarkCachedHit(b *testing.B) {
	svc := newFakeService()
	e := newTestEngine(b, Config{}, svc, NopObserver{})
	key := svc.addKey(b, testApp, "key_01J9ZX3B4C5D6E7F8G9H0JKMNP", time.Time{})
	if d, err := e.Check(context.Background(), key); err != nil || !d.Valid {
		b.Fatal(d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := e.Cached(key); !ok {
			b.Fatal("not a cache hit")
		}
	}
}

// BenchmarkCheckCacheHitParallel is the same under contention for the lock.
func BenchmarkCheckCacheHitParallel(b *testing.B) {
	svc := newFakeService()
	e := newTestEngine(b, Config{}, svc, NopObserver{})
	keys := make([]string, 64)
	ctx := context.Background()
	for i := range keys {
		keys[i] = svc.addKey(b, testApp, fmt.Sprintf("key_%026d", i), time.Time{})
		e.Check(ctx, keys[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Check(ctx, keys[i%len(keys)])
			i++
		}
	})
}

// BenchmarkMemoryPerCachedKey fills the valid-key cache with 1,000,000 keys
// (key ids shaped like the key service's, names of 13 and of 64
// characters) and reports the heap they take, index included. Target: at
// most 200 bytes per key.
func BenchmarkMemoryPerCachedKey(b *testing.B) {
	for _, nameLen := range []int{13, 64} {
		b.Run(fmt.Sprintf("name=%d", nameLen), func(b *testing.B) { benchmarkMemory(b, nameLen) })
	}
}

func benchmarkMemory(b *testing.B, nameLen int) {
	const n = 1_000_000
	for b.Loop() {
		e, err := NewEngine(Config{App: testApp, CacheSize: n}, newFakeService(), nil)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		expires := now.Add(30 * 24 * time.Hour)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var seed [8]byte
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint64(seed[:], uint64(i))
			sum := sha256.Sum256(seed[:])
			fp := fingerprint(sum[:16])
			name := fmt.Sprintf("deploy-%0*d", nameLen-len("deploy-"), i)
			res := Result{Valid: true, Code: CodeValid, KeyID: fmt.Sprintf("key_%026d", i), KeyName: name, AppID: testApp, ExpiresAt: expires}
			e.store(fp, &res, now.UnixNano(), 0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s := e.Stats(); s.ValidEntries != n {
			b.Fatalf("%d entries", s.ValidEntries)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/key")
		runtime.KeepAlive(e)
	}
}
