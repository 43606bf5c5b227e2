package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
	"github.com/appkeys/appkeys/internal/client"
)

// service is the key service under test.
type service struct {
	base, addr string
	proc       *harness.Proc
}

// snap is one reading of the service: its metrics, CPU time and RSS.
type snap struct {
	at  time.Time
	cpu time.Duration
	rss int64
	m   harness.Metrics
}

func (s *service) snap(ctx context.Context) (snap, error) {
	m, err := harness.Scrape(ctx, s.base+"/metrics")
	if err != nil {
		return snap{}, err
	}
	cpu, err := harness.CPUPrecise(s.proc.PID)
	if err != nil {
		return snap{}, err
	}
	rss, err := harness.RSS(s.proc.PID)
	return snap{time.Now(), cpu, rss, m}, err
}

// Metric families read from the service.
const (
	feedReads  = "appkeys_feed_store_reads_total"
	storeOps   = "appkeys_store_duration_seconds_count"
	waiting    = "appkeys_feed_waiting"
	heapInuse  = "go_memstats_heap_inuse_bytes"
	stackInuse = "go_memstats_stack_inuse_bytes"
)

var readKinds = []string{"subscriber", "head", "follow"}

// writePhase bounds a size's writes: an overloaded service may take
// seconds a revoke, and the long-polls' 60 s wait must not run out.
const writePhase = 40 * time.Second

// size is one measured number of subscribers and what it measured.
type size struct {
	asked, n, apps int

	goPerSub, rssPerSub float64 // bytes of memory per idle subscriber
	feedPerWrite        float64 // feed store reads per write, net of the idle rate
	byKind              map[string]float64
	opsPerWrite         float64 // every store operation per write, net
	idleFeedPerSec      float64
	idleOpsPerSec       float64 // every store operation per second, idle
	idleCPU             float64 // service CPU seconds per second, idle
	repoll              repoll
	cpuPerWrite         time.Duration // net of the idle rate
	wake, revoke        []time.Duration
	missed              int // revocations not at every subscriber within 5 s
	writes              int // revocations made (fewer than -writes when the phase ran out)
	failedRevokes       int // revokes that failed (a timeout, under overload)
	lastRevokeErr       string
	err                 error // what stopped this size's measurement
	empty, foreign      int64 // answers without events; events of another app
}

// netGrowth is what a counter grew by over the writes, less what the idle rate
// would have added over as long.
func netGrowth(idle0, idle1, w0, w1 snap, name string) float64 {
	rate := (idle1.m[name] - idle0.m[name]) / idle1.at.Sub(idle0.at).Seconds()
	return (w1.m[name] - w0.m[name]) - rate*w1.at.Sub(w0.at).Seconds()
}

func measure(ctx context.Context, o options, svc *service, owner *client.Client, apps []app, s *size) error {
	s.apps = len(apps)
	// The keys to revoke, made before anyone subscribes: creating a key
	// writes no feed event.
	// Only apps with all their perApp subscribers are revoked in.
	full := apps[:s.n/o.perApp]
	rng := rand.New(rand.NewPCG(uint64(s.n), 16))
	type target struct{ key, app string }
	targets := make([]target, o.writes)
	for i := range targets {
		a := full[rng.IntN(len(full))]
		k, err := owner.CreateKey(ctx, a.id, client.CreateKeyRequest{Name: fmt.Sprintf("fanout-%d-%d", s.n, i), ExpiresAt: time.Now().Add(24 * time.Hour)})
		if err != nil {
			return err
		}
		targets[i] = target{k.ID, a.id}
	}
	verifier, err := client.New(svc.base, apps[0].token)
	if err != nil {
		return err
	}
	head, err := verifier.EventsHead(ctx)
	if err != nil {
		return err
	}

	before, err := svc.snap(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d subscribers: opening ...\n", s.n)
	p := &pool{addr: svc.addr, wait: 60 * time.Second}
	defer p.close()
	opened := time.Now()
	if err := p.open(ctx, s.n, apps, o.perApp, o.sources, head); err != nil {
		return err
	}
	if err := svc.proc.WaitFor(ctx, 2*time.Minute, fmt.Sprintf("%d long-polls waiting", s.n), func() bool {
		m, err := harness.Scrape(ctx, svc.base+"/metrics")
		return err == nil && m[waiting] >= float64(s.n)
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d subscribers: all waiting after %v\n", s.n, time.Since(opened).Round(time.Millisecond))
	time.Sleep(time.Second)

	idle0, err := svc.snap(ctx)
	if err != nil {
		return err
	}
	time.Sleep(o.idle)
	idle1, err := svc.snap(ctx)
	if err != nil {
		return err
	}
	s.goPerSub = (idle1.m[heapInuse] + idle1.m[stackInuse] - before.m[heapInuse] - before.m[stackInuse]) / float64(s.n)
	s.rssPerSub = float64(idle1.rss-before.rss) / float64(s.n)
	s.idleFeedPerSec = (idle1.m[feedReads] - idle0.m[feedReads]) / idle1.at.Sub(idle0.at).Seconds()

	w0, err := svc.snap(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	for i, t := range targets {
		if time.Since(start) > writePhase {
			break // an overloaded service: what was measured so far stands
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * o.interval)))
		t0 := time.Now()
		r := p.expect(t.key, t.app, o.perApp, t0)
		s.writes++
		if err := owner.RevokeKey(ctx, t.key); err != nil {
			s.failedRevokes++
			s.lastRevokeErr = err.Error()
			continue
		}
		s.revoke = append(s.revoke, time.Since(t0))
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			s.missed++
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
		s.wake = append(s.wake, r.latencies...)
		p.mu.Unlock()
	}
	// Let the last write's work finish before the reading.
	time.Sleep(o.interval)
	w1, err := svc.snap(ctx)
	if err != nil {
		return err
	}
	writes := float64(s.writes)
	s.feedPerWrite = netGrowth(idle0, idle1, w0, w1, feedReads) / writes
	s.byKind = map[string]float64{}
	for _, k := range readKinds {
		s.byKind[k] = netGrowth(idle0, idle1, w0, w1, fmt.Sprintf("%s{read=%q}", feedReads, k)) / writes
	}
	s.opsPerWrite = netGrowth(idle0, idle1, w0, w1, storeOps) / writes
	idleSecs := idle1.at.Sub(idle0.at).Seconds()
	s.idleCPU = float64(idle1.cpu-idle0.cpu) / idleSecs
	s.idleOpsPerSec = (idle1.m[storeOps] - idle0.m[storeOps]) / idleSecs
	s.cpuPerWrite = time.Duration((float64(w1.cpu-w0.cpu) - s.idleCPU*w1.at.Sub(w0.at).Seconds()) / writes)
	s.empty, s.foreign = p.empty.Load(), p.foreign.Load()
	if err := p.err(); err != nil {
		return err
	}
	p.close()
	// The next size starts from a service with no long-poll left.
	return svc.proc.WaitFor(ctx, time.Minute, "long-polls gone", func() bool {
		m, err := harness.Scrape(ctx, svc.base+"/metrics")
		return err == nil && m[waiting] == 0
	})
}
