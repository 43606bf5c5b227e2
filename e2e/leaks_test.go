package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/leaktest"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// leakStack is a stack whose key service trusts a GitHub made here.
func leakStack(t *testing.T) (*stack, *leaktest.Signer) {
	t.Helper()
	gh := leaktest.NewSigner()
	keys := leaktest.NewKeyServer(gh)
	t.Cleanup(keys.Close)
	return newStack(t, servicetest.WithConfig(func(c *keyserver.Config) { c.LeakKeysURL = keys.URL })), gh
}

// TestLeakedKeyRefusedBySidecar: a signed leak report naming cached keys
// of two apps and of another organization makes the real sidecars refuse
// each within a second of the answer (cache_ttl 10m: only the feed can do
// that), while a key nobody reported, and every key of a forged report,
// keep working.
func TestLeakedKeyRefusedBySidecar(t *testing.T) {
	s, gh := leakStack(t)
	ctx := context.Background()
	a, b := s.app("leaky-a"), s.app("leaky-b")
	platform, err := client.New(s.ks.URL, s.ks.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	org2, err := platform.CreateOrg(ctx, client.CreateOrgRequest{Name: "other", OwnerEmail: "o@other.example"})
	if err != nil {
		t.Fatal(err)
	}
	owner2, err := client.New(s.ks.URL, org2.Owner.Token)
	if err != nil {
		t.Fatal(err)
	}
	c, err := owner2.CreateApp(ctx, client.CreateAppRequest{Name: "theirs", Kind: client.KindCloudFunction})
	if err != nil {
		t.Fatal(err)
	}
	sa, sb, sc := s.site(a, "cache_ttl 10m"), s.site(b, "cache_ttl 10m"), s.site(c, "cache_ttl 10m")
	s.load(s.ks.URL, sa, sb, sc)
	exp := time.Now().Add(time.Hour)
	ka, kb, kc, keep := s.key(nil, a.ID, exp), s.key(nil, b.ID, exp), s.key(owner2, c.ID, exp), s.key(nil, a.ID, exp)
	forgedOnly := s.key(nil, a.ID, exp)
	cached := []struct {
		site Site
		key  string
	}{{sa, ka.PlainKey}, {sb, kb.PlainKey}, {sc, kc.PlainKey}, {sa, keep.PlainKey}, {sa, forgedOnly.PlainKey}}
	for _, k := range cached {
		if got := s.get(k.site, "X-API-Key", k.key); got.status != http.StatusOK {
			t.Fatalf("a new key: %d", got.status)
		}
	}
	// A first revocation per site proves its feed subscriber is up, or
	// the first refusal below would time its start-up.
	for _, w := range []struct {
		owner *client.Client
		site  Site
	}{{s.owner, sa}, {s.owner, sb}, {owner2, sc}} {
		k := s.key(w.owner, w.site.App, exp)
		s.get(w.site, "X-API-Key", k.PlainKey)
		if err := w.owner.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		s.waitStatus(w.site, k.PlainKey, http.StatusUnauthorized, 5*time.Second, http.StatusOK)
	}

	forged := leaktest.NewSigner()
	status, _, err := leaktest.Post(ctx, s.http, s.ks.URL+"/v1/leaks/github", forged, leaktest.Body(forgedOnly.PlainKey))
	if err != nil || status != http.StatusUnauthorized {
		t.Fatalf("forged report: %d %v", status, err)
	}
	status, answer, err := leaktest.Post(ctx, s.http, s.ks.URL+"/v1/leaks/github", gh, leaktest.Body(ka.PlainKey, kb.PlainKey, kc.PlainKey, "cak_short"))
	if err != nil || status != http.StatusOK {
		t.Fatalf("signed report: %d %v %s", status, err, answer)
	}
	var fb []leaktest.Feedback
	if err := json.Unmarshal(answer, &fb); err != nil || len(fb) != 4 || fb[2].Label != "true_positive" || fb[3].Label != "false_positive" {
		t.Fatalf("answer %s", answer)
	}
	for i, k := range cached[:3] {
		d := s.waitStatus(k.site, k.key, http.StatusUnauthorized, time.Second, http.StatusOK)
		t.Logf("leaked key %d refused %s after the answer", i, d.Round(time.Millisecond))
	}
	for _, k := range cached[3:] {
		if got := s.get(k.site, "X-API-Key", k.key); got.status != http.StatusOK {
			t.Fatalf("a key not (genuinely) reported: %d", got.status)
		}
	}
}

// TestLeakBatch: a report of many matches, every one a live key cached at
// a real sidecar, is answered and every key refused. It runs 200 here:
// under the race detector the pure-Go SQLite is some twenty times slower.
// go run ./bench/leaks measures the thousand-match batch, without the
// race detector, and BENCHMARKS.md keeps its figures.
func TestLeakBatch(t *testing.T) {
	s, gh := leakStack(t)
	n := 200
	if testing.Short() {
		n = 50
	}
	rep, err := MeasureLeakBatch(context.Background(), LeakBatchConfig{
		KeyService: s.ks.URL, OwnerToken: s.ks.OwnerToken, Admin: admin, Signer: gh, Matches: n,
		Load: s.harnessLoad,
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TruePositives != n {
		t.Fatalf("%d true positives of %d live keys", rep.TruePositives, n)
	}
	t.Logf("%d matches: answered in %s, every key refused by the sidecar %s after sending", n, rep.Answered.Round(time.Millisecond), rep.AllRefused.Round(time.Millisecond))
}
