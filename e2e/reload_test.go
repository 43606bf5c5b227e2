package e2e

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReloadsUnderLoad: 20 config reloads while clients keep sending a valid
// key. No answer but 200, the request counter keeps counting in every new
// metrics registry, the cache survives reloads that keep its settings, one
// feed subscriber serves the app throughout, and goroutines end where they
// started.
func TestReloadsUnderLoad(t *testing.T) {
	s := newStack(t)
	p := newKSProxy(t, s.ks.URL)
	a := s.app("reloaded")
	base := s.site(a)
	k := s.key(nil, a.ID, time.Now().Add(time.Hour))
	// Every reload changes a response header; every other one also the
	// engine's timeout, which gives the app a new engine (and cache) on the
	// same feed subscriber.
	config := func(i int) Site {
		site := base
		site.Auth = []string{fmt.Sprintf("timeout %ds", 2+(i/2)%2)}
		site.Directives = []string{fmt.Sprintf("header X-Reload %d", i)}
		return site
	}
	engines := 1
	s.load(p.URL, config(0))
	// The feed first: its subscriber purges the cache when it reads the
	// head, so a key cached before that would be verified a second time.
	waitFor(t, 5*time.Second, "one feed poll in flight", func() bool { return p.polls(a.VerifierToken) == 1 })
	s.waitStatus(base, k.PlainKey, 200, 5*time.Second)

	s.http.CloseIdleConnections()
	goroutines, heap := settle()

	allowed := func() float64 {
		return metric(adminMetrics(t), "appkey_auth_requests_total", "app", a.ID, "result", "allowed")
	}
	stopLoad := s.steadyLoad(base, k.PlainKey, 4)

	for i := 1; i <= 20; i++ {
		before := allowed()
		s.load(p.URL, config(i))
		if config(i).Auth[0] != config(i - 1).Auth[0] {
			engines++
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("requests counted after reload %d", i), func() bool { return allowed() >= before+8 })
	}
	answers := stopLoad()
	total, failed := 0, 0
	for ans, n := range answers {
		total += n
		switch {
		case ans == "200":
		case strings.HasPrefix(ans, "error: "):
			// Caddy's own reload, not the handler: a keep-alive connection
			// the old server closes as a request goes out (EOF), or a
			// connection queued on the old listener as it closes (reset).
			failed += n
		default:
			t.Errorf("%d answers %q during reloads (all: %v)", n, ans, answers)
		}
	}
	t.Logf("answers during 20 reloads: %v", answers)
	if failed*100 > total {
		t.Errorf("%d of %d requests failed in transport during reloads", failed, total)
	}
	if v := p.verifies.Load(); v > int64(engines) {
		t.Errorf("%d verify calls for one key over %d engines: the cache did not survive reloads", v, engines)
	}
	if h := p.heads.Load(); h != 1 {
		t.Errorf("%d feed subscriptions started, want 1 across every reload", h)
	}
	waitFor(t, 5*time.Second, "exactly one feed poll in flight", func() bool { return p.polls(a.VerifierToken) == 1 })

	// Caddy's reverse_proxy keeps the upstream connections that were busy
	// when a reload cleaned it up for its idle timeout (2m); they are
	// Caddy's, not the handler's, so close them from the upstream's side.
	s.http.CloseIdleConnections()
	s.upstream.CloseClientConnections()
	var after int
	var heapAfter uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, heapAfter = settle()
		if after <= goroutines+10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("goroutines %d → %d, heap %d KiB → %d KiB", goroutines, after, heap>>10, heapAfter>>10)
	if after > goroutines+10 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines grew from %d to %d over 20 reloads:\n%s", goroutines, after, buf[:runtime.Stack(buf, true)])
	}
}

// settle collects garbage and returns the goroutine count and live heap.
func settle() (int, uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestVerifierTokenSwapUnderLoad: an app's verifier token is rolled while
// clients keep sending a cached key, and the sidecar moves to the new
// token with a caddy reload. No answer but 200, the key is never verified
// again (the cache survives the swap), one feed subscriber serves
// throughout and follows the new token, and after the old token is
// retired a key never seen before still verifies and a revocation still
// arrives.
func TestVerifierTokenSwapUnderLoad(t *testing.T) {
	s := newStack(t)
	p := newKSProxy(t, s.ks.URL)
	a := s.app("swapped")
	site := s.site(a)
	k := s.key(nil, a.ID, time.Now().Add(time.Hour))
	doomed := s.key(nil, a.ID, time.Now().Add(time.Hour))
	s.load(p.URL, site)
	waitFor(t, 5*time.Second, "one feed poll in flight", func() bool { return p.polls(a.VerifierToken) == 1 })
	s.waitStatus(site, k.PlainKey, 200, 5*time.Second)
	s.waitStatus(site, doomed.PlainKey, 200, 5*time.Second)
	verifiesBefore := p.verifies.Load()

	allowed := func() float64 {
		return metric(adminMetrics(t), "appkey_auth_requests_total", "app", a.ID, "result", "allowed")
	}
	stopLoad := s.steadyLoad(site, k.PlainKey, 8)
	ctx := context.Background()
	minted, err := s.owner.MintVerifierToken(ctx, a.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := allowed()
	swapped := site
	swapped.Token = minted.Token
	s.load(p.URL, swapped)
	waitFor(t, 20*time.Second, "requests counted after the swap", func() bool { return allowed() >= before+200 })
	if err := s.owner.RetireVerifierToken(ctx, a.ID, *minted.PreviousID); err != nil {
		t.Fatal(err)
	}
	// An event ends the feed's poll under the old token; the next one goes
	// out under the new token, and the revocation it carries applies.
	if err := s.owner.RevokeKey(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the feed polling with the new token", func() bool {
		return p.polls(minted.Token) == 1 && p.polls(a.VerifierToken) == 0
	})
	s.waitStatus(site, doomed.PlainKey, 401, 5*time.Second, 200)
	before = allowed()
	waitFor(t, 20*time.Second, "requests counted after the old token was retired", func() bool { return allowed() >= before+200 })
	// A key the sidecar never saw verifies with the new token.
	fresh := s.key(nil, a.ID, time.Now().Add(time.Hour))
	s.waitStatus(site, fresh.PlainKey, 200, 5*time.Second)
	answers := stopLoad()
	total, failed, fivexx := 0, 0, 0
	for ans, n := range answers {
		total += n
		switch {
		case ans == "200":
		case strings.HasPrefix(ans, "error: "):
			failed += n // Caddy's own reload closing a keep-alive connection
		default:
			if strings.HasPrefix(ans, "5") {
				fivexx += n
			}
			t.Errorf("%d answers %q during the token swap (all: %v)", n, ans, answers)
		}
	}
	if failed*100 > total {
		t.Errorf("%d of %d requests failed in transport during the swap", failed, total)
	}
	// The cached key was never verified again; the one new key was, once.
	verifies := p.verifies.Load() - verifiesBefore
	t.Logf("token swap under load: %d requests, %d answered 5xx, %d transport errors; %d verify calls after the swap (1 expected: the new key), %d feed subscriptions", total, fivexx, failed, verifies, p.heads.Load())
	if verifies != 1 {
		t.Errorf("%d verify calls after the swap, want 1 (the new key): the cache did not survive the token swap", verifies)
	}
	if h := p.heads.Load(); h != 1 {
		t.Errorf("%d feed subscriptions started, want 1 across the swap", h)
	}
}

// steadyLoad sends key to site from n clients, one request after another,
// until the returned stop is called; stop returns how each request was
// answered: by status ("200", "401", …), or "error: …" for a transport
// failure.
func (s *stack) steadyLoad(site Site, key string, n int) (stop func() map[string]int) {
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		wg      sync.WaitGroup
		done    = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := s.try(site, "X-API-Key", key)
				ans := fmt.Sprint(got.status)
				if err != nil {
					ans = "error: " + err.Error()
				}
				mu.Lock()
				answers[ans]++
				mu.Unlock()
			}
		})
	}
	return func() map[string]int {
		close(done)
		wg.Wait()
		return answers
	}
}
