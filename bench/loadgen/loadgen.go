// Package loadgen is a closed-loop HTTP load generator for benchmarks over
// loopback: a fixed number of workers, each sending its next request as soon
// as the previous answer has been read, on one shared keep-alive transport,
// for a fixed time. Every latency is kept, so the percentiles are exact.
//
// It measures what a client sees, so run the target and the generator on the
// same machine only to compare targets with each other in one run (the
// generator takes its share of the CPU from every target alike).
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Request is one request to send. Header may be shared between requests:
// the generator only reads it.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// Want, when not zero, is the one status that counts as success for
	// this request; Config.Check is not consulted.
	Want int
}

// Config describes a run.
type Config struct {
	// Workers is the number of concurrent connections and requests in
	// flight; 16 when zero.
	Workers int
	// Duration is how long requests are measured; 10s when zero.
	Duration time.Duration
	// Warmup is how long requests are sent before measuring starts; their
	// latencies and errors are not counted.
	Warmup time.Duration
	// Next returns worker's next request. It is called from worker's own
	// goroutine only, with that worker's own random source.
	Next func(worker int, rng *rand.Rand) Request
	// Check, when set, judges an answer; false counts an error. When nil, a
	// status other than 200 is an error.
	Check func(status int, body []byte) bool
	// Transport, when set, replaces the generator's own transport.
	Transport http.RoundTripper
}

// Result is what a run measured.
type Result struct {
	Requests int           // answered requests, errors included, after the warm-up
	Errors   int           // transport errors and answers Check refused
	Elapsed  time.Duration // the measured window
	RPS      float64       // Requests per second of Elapsed
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	Max      time.Duration
	// CPU is the CPU time (user and system) this whole process spent in
	// the measured window: the generator's share plus, when the target runs
	// in the same process, the target's. Divided by Requests it is a cost
	// per request that other load on the machine changes far less than
	// throughput.
	CPU time.Duration
	// FirstError describes the first error seen, for a diagnosis.
	FirstError string
}

// CPUPerRequest is CPU divided by Requests.
func (r Result) CPUPerRequest() time.Duration {
	if r.Requests == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Requests)
}

func (r Result) String() string {
	return fmt.Sprintf("%.0f req/s, p50 %v, p90 %v, p99 %v, max %v, %d requests, %d errors, CPU %v/req",
		r.RPS, r.P50, r.P90, r.P99, r.Max, r.Requests, r.Errors, r.CPUPerRequest())
}

// NewTransport returns a keep-alive transport that keeps an idle connection
// for each of n workers (Go's default keeps 2 per host, and every other
// request would pay a new TCP handshake) and never uses a proxy.
func NewTransport(n int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * n,
		MaxIdleConnsPerHost: 2 * n,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// Run sends requests until Warmup plus Duration have passed or ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Next == nil {
		return Result{}, errors.New("loadgen: Config.Next is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	rt := cfg.Transport
	if rt == nil {
		t := NewTransport(cfg.Workers)
		defer t.CloseIdleConnections()
		rt = t
	}
	client := &http.Client{
		Transport:     rt,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancel()

	type tally struct {
		lat      []time.Duration
		errors   int
		firstErr string
		last     time.Time
	}
	cpuAtStart := make(chan time.Duration, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		cpuAtStart <- processCPU()
	}()
	tallies := make([]tally, cfg.Workers)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[w]
			t.lat = make([]time.Duration, 0, 1<<14)
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			buf := bytes.NewBuffer(make([]byte, 0, 4096))
			for ctx.Err() == nil {
				r := cfg.Next(w, rng)
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				var body io.Reader
				if r.Body != nil {
					body = bytes.NewReader(r.Body)
				}
				req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
				if err != nil {
					t.errors++
					t.firstErr = err.Error()
					return
				}
				if r.Header != nil {
					req.Header = r.Header
				}
				status := 0
				buf.Reset()
				resp, err := client.Do(req)
				if err == nil {
					status = resp.StatusCode
					_, err = buf.ReadFrom(resp.Body)
					resp.Body.Close()
				}
				t1 := time.Now()
				if t0.Before(measureFrom) {
					continue // warm-up
				}
				t.last = t1
				t.lat = append(t.lat, t1.Sub(t0))
				ok := err == nil
				if ok {
					if r.Want != 0 {
						ok = status == r.Want
					} else if cfg.Check != nil {
						ok = cfg.Check(status, buf.Bytes())
					} else {
						ok = status == http.StatusOK
					}
				}
				if !ok {
					t.errors++
					if t.firstErr == "" {
						if err != nil {
							t.firstErr = err.Error()
						} else {
							t.firstErr = fmt.Sprintf("status %d: %.200s", status, buf.Bytes())
						}
					}
				}
			}
		}()
	}
	wg.Wait()

	var res Result
	res.CPU = processCPU() - <-cpuAtStart
	var all []time.Duration
	last := end
	for _, t := range tallies {
		all = append(all, t.lat...)
		res.Errors += t.errors
		if res.FirstError == "" {
			res.FirstError = t.firstErr
		}
		if t.last.After(last) {
			last = t.last
		}
	}
	if err := ctx.Err(); err != nil && len(all) == 0 {
		return res, err
	}
	res.Requests = len(all)
	// The window ends when the last request begun in it was answered.
	res.Elapsed = last.Sub(measureFrom)
	if res.Elapsed > 0 {
		res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	}
	if len(all) > 0 {
		slices.Sort(all)
		res.P50 = Percentile(all, 50)
		res.P90 = Percentile(all, 90)
		res.P99 = Percentile(all, 99)
		res.Max = all[len(all)-1]
	}
	return res, nil
}

// processCPU is the CPU time the process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Percentile returns the p-th percentile (nearest rank) of sorted latencies.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}
