package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
	"github.com/appkeys/appkeys/internal/client"
)

// repoll is what one size's re-poll phase measured: subscribers whose
// waits run out with no news and ask again at once, as every sidecar does
// once per wait (30 s by default) when nothing happens to its app.
type repoll struct {
	polls      int64         // answers with no events over the window
	perSec     float64       // those per second
	cpuPerPoll time.Duration // service CPU per re-poll, net of the idle rate
	opsPerPoll float64       // store operations per re-poll, net of the idle rate
	readsPoll  float64       // feed store reads per re-poll
	err        error
}

// measureRepoll opens s.n long-polls with o.repollWait, far shorter than a
// sidecar's, so that in o.repollWindow the service answers many empty waits
// and takes the same subscribers back; it reads the service's CPU and store
// operations over the window. idleCPU is the service's idle CPU rate (CPU
// seconds per second) measured with the same subscribers on long waits.
func measureRepoll(ctx context.Context, o options, svc *service, apps []app, s *size) error {
	verifier, err := client.New(svc.base, apps[0].token)
	if err != nil {
		return err
	}
	head, err := verifier.EventsHead(ctx)
	if err != nil {
		return err
	}
	p := &pool{addr: svc.addr, wait: o.repollWait}
	defer p.close()
	if err := p.open(ctx, s.n, apps, o.perApp, o.sources, head); err != nil {
		return err
	}
	// One full wait for every subscriber to be in its cycle.
	time.Sleep(o.repollWait + time.Second)
	r0, err := svc.snap(ctx)
	if err != nil {
		return err
	}
	e0 := p.empty.Load()
	time.Sleep(o.repollWindow)
	r1, err := svc.snap(ctx)
	if err != nil {
		return err
	}
	e1 := p.empty.Load()
	if err := p.err(); err != nil {
		return err
	}
	window := r1.at.Sub(r0.at).Seconds()
	rp := &s.repoll
	rp.polls = e1 - e0
	if rp.polls == 0 {
		return fmt.Errorf("no re-poll answered in %v", o.repollWindow)
	}
	polls := float64(rp.polls)
	rp.perSec = polls / window
	rp.cpuPerPoll = time.Duration((float64(r1.cpu-r0.cpu) - s.idleCPU*window) / polls)
	rp.opsPerPoll = (r1.m[storeOps] - r0.m[storeOps] - s.idleOpsPerSec*window) / polls
	rp.readsPoll = (r1.m[feedReads] - r0.m[feedReads] - s.idleFeedPerSec*window) / polls
	fmt.Fprintf(os.Stderr, "%d subscribers, wait %v: %.0f re-polls/s, %.1f µs CPU and %.2f store ops per re-poll\n",
		s.n, o.repollWait, rp.perSec, float64(rp.cpuPerPoll)/float64(time.Microsecond), rp.opsPerPoll)
	p.close()
	return svc.proc.WaitFor(ctx, time.Minute, "long-polls gone", func() bool {
		m, err := harness.Scrape(ctx, svc.base+"/metrics")
		return err == nil && m[waiting] == 0
	})
}
