package main

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/appkeys/appkeys/bench/harness"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// cores is CPU time over a wall-clock span, in cores busy.
func cores(cpu, wall time.Duration) string { return fmt.Sprintf("%.2f", cpu.Seconds()/wall.Seconds()) }

// total sums a phase's windows.
func (p *phase) total() window {
	var t window
	for _, w := range p.windows {
		t.sent += w.sent
		t.ok += w.ok
		t.unavailable += w.unavailable
		t.other += w.other
		t.timeouts += w.timeouts
		t.shed += w.shed
		t.lat = append(t.lat, w.lat...)
		t.calls += w.calls
		t.peak = max(t.peak, w.peak)
		t.ksCPU += w.ksCPU
		t.caddyCPU += w.caddyCPU
		t.harnessCPU += w.harnessCPU
	}
	return t
}

func (w window) String() string {
	return fmt.Sprintf("%d sent, %d ok, %d 503, %d no answer, %d shed; p50 %s p99 %s; %d verify calls, peak %d in flight",
		w.sent, w.ok, w.unavailable, w.timeouts, w.shed, ms(harness.Quantile(w.lat, .5)), ms(harness.Quantile(w.lat, .99)), w.calls, w.peak)
}

func report(out io.Writer, o options, s seed, phases []*phase, loadBefore, loadAfter string, took time.Duration) {
	seeding := "reused from -data"
	if s.took > 0 {
		seeding = fmt.Sprintf("seeded in %.1f s", s.took.Seconds())
	}
	fmt.Fprintf(out, "Cold start: %d valid keys of one app (%s); key service (`appkeys serve`, SQLite) and Caddy with appkey_auth each a fresh process per phase, "+
		"behind them a counting proxy in the harness; open-loop load of %d requests/s over loopback (at most %d in flight, client timeout %v), "+
		"every key once in a shuffled pass (all misses), then at random; failed_attempts off; %s, GOMAXPROCS %d; load average %s before, %s after; measured in %s.\n\n",
		len(s.keys), seeding, o.rate, o.outstanding, o.clientTimeout, runtime.Version(), runtime.GOMAXPROCS(0), loadBefore, loadAfter, took.Round(time.Second))

	fmt.Fprintf(out, "| max_verify_calls | window | sent | 200 | 503 | no answer | shed | p50 | p99 | verify calls/s | peak verifies in flight | key-service CPU (cores) | Caddy CPU (cores) | harness CPU (cores) |\n")
	fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, p := range phases {
		for i, w := range p.windows {
			from, to := time.Duration(i)*o.window, time.Duration(i+1)*o.window
			fmt.Fprintf(out, "| %s | %v–%v | %d | %d | %d | %d | %d | %s | %s | %.0f | %d | %s | %s | %s |\n",
				p.cap, from, to, w.sent, w.ok, w.unavailable, w.timeouts, w.shed, ms(harness.Quantile(w.lat, .5)), ms(harness.Quantile(w.lat, .99)),
				float64(w.calls)/o.window.Seconds(), w.peak, cores(w.ksCPU, o.window), cores(w.caddyCPU, o.window), cores(w.harnessCPU, o.window))
		}
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "| max_verify_calls | sent | 200 | 503 | no answer | shed | p50 | p99 | max | verify calls | verify calls/s (mean) | peak verifies in flight | key-service CPU | CPU µs / verify call | Caddy CPU | key service's own verify time (mean) | its verifies over 1 s |\n")
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, p := range phases {
		t := p.total()
		wall := time.Duration(len(p.windows)) * o.window
		perCall := 0.0
		if t.calls > 0 {
			perCall = float64(t.ksCPU.Microseconds()) / float64(t.calls)
		}
		fmt.Fprintf(out, "| %s | %d | %d | %d | %d | %d | %s | %s | %s | %d | %.0f | %d | %.1f s | %.0f | %.1f s | %s | %.0f |\n",
			p.cap, t.sent, t.ok, t.unavailable, t.timeouts, t.shed, ms(harness.Quantile(t.lat, .5)), ms(harness.Quantile(t.lat, .99)), ms(harness.Quantile(t.lat, 1)),
			t.calls, float64(t.calls)/wall.Seconds(), t.peak, t.ksCPU.Seconds(), perCall, t.caddyCPU.Seconds(), ms(p.servedMean), p.slowServed)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "- A window holds the requests sent in it (their answers may come later); \"no answer\" is a request given up at the client timeout (or a connection error), counted in the percentiles at the timeout.")
	fmt.Fprintln(out, "- Verify calls and those in flight are counted by the proxy between Caddy and the key service, as the key service receives them (the change feed's long-poll is not counted).")
	fmt.Fprintln(out, "- CPU is each process's own (/proc schedstat), in cores busy over the window; the harness (load generator and proxy) shares the same 2 cores.")
	fmt.Fprintln(out, "- The key service's own verify time is from its appkeys_http_request_duration_seconds histogram, over the whole phase: a verify call that took long at the proxy but not there waited in front of it (the proxy, the harness, the network stack).")
}
