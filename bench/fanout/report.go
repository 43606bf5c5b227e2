package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func report(w io.Writer, o options, store string, hard uint64, sizes []size, loadBefore, loadAfter string, took time.Duration) {
	fmt.Fprintf(w, "Key service (`appkeys serve`, %s) as its own process; %d long-polls (wait=60s) per app over loopback from %d client addresses; "+
		"%d revocations per size, one every %v, each timed from the revoke's start to every subscriber of its app receiving it. "+
		"RLIMIT_NOFILE hard limit %d; %s, GOMAXPROCS %d; load average %s before, %s after; measured in %s.\n\n",
		store, o.perApp, o.sources, o.writes, o.interval, hard, runtime.Version(), runtime.GOMAXPROCS(0), loadBefore, loadAfter, took.Round(time.Second))
	fmt.Fprintln(w, "| subscribers | apps | feed store reads / write | (subscriber, head, follow) | all store ops / write | wake p50 | wake p99 | wake max | revoke p50 | memory / idle subscriber (Go heap+stacks) | (RSS) | CPU / write | missed | empty answers | other app's events |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range sizes {
		n := fmt.Sprint(s.n)
		if s.n != s.asked {
			n = fmt.Sprintf("%d (asked %d)", s.n, s.asked)
		}
		if s.err != nil {
			fmt.Fprintf(w, "| %s | %d | not measured: %v |||||||||||||\n", n, s.apps, s.err)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.2f | %.2f, %.2f, %.2f | %.2f | %s | %s | %s | %s | %s | %s | %.0f µs | %d | %d | %d |\n",
			n, s.apps, s.feedPerWrite, s.byKind["subscriber"], s.byKind["head"], s.byKind["follow"], s.opsPerWrite,
			ms(harness.Quantile(s.wake, 0.5)), ms(harness.Quantile(s.wake, 0.99)), ms(harness.Quantile(s.wake, 1)), ms(harness.Quantile(s.revoke, 0.5)),
			kib(s.goPerSub), kib(s.rssPerSub), float64(s.cpuPerWrite)/float64(time.Microsecond), s.missed, s.empty, s.foreign)
	}
	fmt.Fprintln(w)
	for _, s := range sizes {
		if s.writes < o.writes || s.failedRevokes > 0 {
			fmt.Fprintf(w, "- %d subscribers: %d of %d revocations made within the %v write phase, %d of them failed (last: %s); figures are per revocation made.\n",
				s.n, s.writes, o.writes, writePhase, s.failedRevokes, s.lastRevokeErr)
		}
		if s.n != s.asked {
			fmt.Fprintf(w, "- %d subscribers do not fit under the hard RLIMIT_NOFILE of %d (each process holds one descriptor per long-poll, and this process may not raise its hard limit): measured at %d.\n", s.asked, hard, s.n)
		}
	}
	fmt.Fprintln(w, "- Store reads and CPU are net of the idle rate measured just before the writes (the head poll); \"all store ops\" counts every store operation (feed reads, the revoke's write, verifier-token lookups of the re-polls).")
	fmt.Fprintln(w, "- Memory per idle subscriber: growth of the service's Go heap in use plus goroutine stacks (and of its RSS) from before the long-polls were opened to all of them waiting, divided by their number.")
	if o.repollWait > 0 {
		fmt.Fprintf(w, "\nRe-polls: the same subscribers with wait=%v, so that every wait runs out with no news and the subscriber asks again at once (a sidecar does this once per wait, 30 s by default); measured over %v, net of the idle rate.\n\n", o.repollWait, o.repollWindow)
		fmt.Fprintln(w, "| subscribers | re-polls / s | CPU / re-poll | store ops / re-poll | feed store reads / re-poll |")
		fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: |")
		for _, s := range sizes {
			if s.err != nil {
				continue
			}
			if s.repoll.err != nil {
				fmt.Fprintf(w, "| %d | not measured: %v ||||\n", s.n, s.repoll.err)
				continue
			}
			fmt.Fprintf(w, "| %d | %.0f | %.1f µs | %.2f | %.2f |\n", s.n, s.repoll.perSec,
				float64(s.repoll.cpuPerPoll)/float64(time.Microsecond), s.repoll.opsPerPoll, s.repoll.readsPoll)
		}
	}
	for _, s := range sizes {
		if s.n == 10_000 {
			fmt.Fprintf(w, "\nGoals at 10,000 subscribers: store reads per write %.2f (≤ 2: %s); wake p99 %s (< 50 ms: %s); memory per idle subscriber %s (< 16 KiB: %s).\n",
				s.feedPerWrite, harness.Verdict(math.Round(s.feedPerWrite*100) <= 200), ms(harness.Quantile(s.wake, 0.99)), harness.Verdict(harness.Quantile(s.wake, 0.99) < 50*time.Millisecond),
				kib(s.goPerSub), harness.Verdict(s.goPerSub < 16*1024))
		}
	}
}
