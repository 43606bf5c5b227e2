package verify

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/verify/verifytest"
)

// callObserver records the outcome of every verify call.
type callObserver struct {
	countObserver
	mu    sync.Mutex
	calls []callOutcome
}

type callOutcome struct {
	status int
	bad    bool // a 200 that was no answer
	err    error
}

func (o *callObserver) KeyServiceCall(status int, err error, _ time.Duration) {
	var ba *BadAnswerError
	o.mu.Lock()
	o.calls = append(o.calls, callOutcome{status: status, bad: errors.As(err, &ba), err: err})
	o.mu.Unlock()
}

func (o *callObserver) outcomes() []callOutcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]callOutcome(nil), o.calls...)
}

// label is the metric label caddymodule gives an outcome.
func (c callOutcome) label() string {
	switch {
	case c.err == nil:
		return "200"
	case c.status == 0:
		return "error"
	case c.bad:
		return "invalid"
	}
	return strconv.Itoa(c.status)
}

// TestFaults runs the engine, over HTTP with the real client, against a key
// service failing in each way it can. Whatever the fault: no key is called
// valid without a valid answer, a known key is served stale within
// StaleIfError and never past it, an unknown key gets "unavailable" (never
// a verdict), the redirect is not followed, no error text carries the key,
// and the call is reported with the status it had.
func TestFaults(t *testing.T) {
	for _, fault := range verifytest.Faults {
		t.Run(string(fault), func(t *testing.T) {
			// Only the faults that never answer need the timeout to end
			// them; the others get room, or reading a 2 MiB body on a
			// loaded machine can outlast it and fail as a timeout instead.
			timeout := 5 * time.Second
			if fault == verifytest.Slow || fault == verifytest.BlackHole {
				timeout = 300 * time.Millisecond
			}
			srv := verifytest.New(t)
			srv.Delay = 10 * time.Second // Slow answers well after the timeout
			client := clientOf(t, srv)
			clk := newClock()
			obs := &callObserver{}
			e := newTestEngine(t, Config{CacheTTL: time.Minute, StaleIfError: 5 * time.Minute, Timeout: timeout, Now: clk.Now}, client, obs)
			ctx := context.Background()
			known := srv.AddKey(t, "key_known", testApp)
			if d, err := e.Check(ctx, known); err != nil || !d.Valid {
				t.Fatalf("setup: %+v, %v", d, err)
			}
			srv.SetFault(fault)
			clk.Add(2 * time.Minute) // past CacheTTL, inside StaleIfError

			checkErr := func(err error) {
				t.Helper()
				if err != nil && (strings.Contains(err.Error(), known) || strings.Contains(err.Error(), "cak_")) {
					t.Fatalf("error text carries a key: %v", err)
				}
			}
			if fault == verifytest.Flap {
				// Every other call fails: whatever the order, a known key
				// is always valid, an unknown one never is.
				for i := range 8 {
					d, err := e.Check(ctx, known)
					checkErr(err)
					if err != nil || !d.Valid {
						t.Fatalf("known key, flap %d: %+v, %v", i, d, err)
					}
					d, err = e.Check(ctx, newKey(t))
					checkErr(err)
					if d.Valid || (err == nil) == (d.Code == 0) || err != nil && !errors.Is(err, ErrUnavailable) {
						t.Fatalf("unknown key, flap %d: %+v, %v", i, d, err)
					}
				}
				labels := map[string]bool{}
				for _, c := range obs.outcomes() {
					labels[c.label()] = true
				}
				if !labels["200"] || !labels["503"] {
					t.Fatalf("calls reported as %v; want both 200 and 503", labels)
				}
				return
			}

			d, err := e.Check(ctx, known)
			checkErr(err)
			if err != nil || !d.Valid || d.Source != SourceStale || d.KeyID != "key_known" {
				t.Fatalf("known key inside stale_if_error: %+v, %v; want stale valid", d, err)
			}
			if obs.stale.Load() != 1 {
				t.Fatalf("stale served counted %d; want 1", obs.stale.Load())
			}
			unknown := newKey(t)
			d, err = e.Check(ctx, unknown)
			checkErr(err)
			var ue *UnavailableError
			if !errors.As(err, &ue) || ue.RetryAfter <= 0 || d.Valid || d.Code != 0 {
				t.Fatalf("unknown key: %+v, %v; want *UnavailableError and no verdict", d, err)
			}
			clk.Add(4 * time.Minute) // 6m after the answer: past CacheTTL + StaleIfError
			d, err = e.Check(ctx, known)
			checkErr(err)
			if !errors.Is(err, ErrUnavailable) || d.Valid {
				t.Fatalf("known key past stale_if_error: %+v, %v; want unavailable", d, err)
			}

			calls := obs.outcomes()
			if len(calls) != 4 {
				t.Fatalf("%d verify calls reported; want 4", len(calls))
			}
			for _, c := range calls[1:] {
				if got, want := c.label(), verifytest.StatusLabel(fault); got != want {
					t.Fatalf("call reported as %q (%v); want %q", got, c.err, want)
				}
			}
			if n := srv.TrapCalls.Load(); n != 0 {
				t.Fatalf("the redirect was followed %d times", n)
			}
			if fault == verifytest.Truncated || fault == verifytest.Oversized || fault == verifytest.Schema {
				var ba *BadAnswerError
				if !errors.As(err, &ba) {
					t.Fatalf("bad answer: %v; want a *BadAnswerError inside", err)
				}
			}
		})
	}
}

// TestFaultOpensBreakerNamingTheCause: once repeated failures open the
// breaker, its refusals still say what failed.
func TestFaultOpensBreakerNamingTheCause(t *testing.T) {
	srv := verifytest.New(t)
	srv.SetFault(verifytest.HTTP502)
	client := clientOf(t, srv)
	e := newTestEngine(t, Config{BreakerThreshold: 2, BreakerCooldown: time.Hour}, client, nil)
	for range 2 {
		e.Check(context.Background(), newKey(t))
	}
	before := srv.VerifyCalls.Load()
	_, err := e.Check(context.Background(), newKey(t))
	var se *StatusError
	if !errors.Is(err, errBreakerOpen) || !errors.As(err, &se) || se.Status != 502 || !strings.Contains(err.Error(), "HTTP 502") {
		t.Fatalf("open breaker: %v; want it to name the HTTP 502", err)
	}
	if srv.VerifyCalls.Load() != before {
		t.Fatal("the open breaker let a call through")
	}
}

// TestKeyServiceThrottleIsNoOutage: the key service answers 429 to unknown
// keys once the app's budget of failed verifies is spent, and answers
// good keys as ever. Those 429s are refusals of the keys, not an outage:
// each is ErrThrottled with the key service's Retry-After, never
// ErrUnavailable; none is cached; none counts toward the circuit breaker,
// so good keys, cached or not, go on being checked; and no stale answer
// stands in for one.
func TestKeyServiceThrottleIsNoOutage(t *testing.T) {
	srv := verifytest.New(t)
	client := clientOf(t, srv)
	clk := newClock()
	obs := &callObserver{}
	e := newTestEngine(t, Config{CacheTTL: time.Minute, StaleIfError: time.Hour, BreakerThreshold: 2, Now: clk.Now}, client, obs)
	ctx := context.Background()
	known := srv.AddKey(t, "key_known", testApp)
	if d, err := e.Check(ctx, known); err != nil || !d.Valid {
		t.Fatalf("setup: %+v, %v", d, err)
	}
	srv.SetFault(verifytest.HTTP429)

	guess := newKey(t)
	for i := range 5 { // well past the breaker's threshold; the same guess is asked again each time
		before := srv.VerifyCalls.Load()
		d, err := e.Check(ctx, guess)
		var te *ThrottledError
		if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable) || te.RetryAfter != 7*time.Second || !reflect.DeepEqual(d, Decision{}) {
			t.Fatalf("guess %d: %+v, %v; want ErrThrottled with Retry-After 7s and no verdict", i, d, err)
		}
		if srv.VerifyCalls.Load() != before+1 {
			t.Fatalf("guess %d made no call: the 429 was cached", i)
		}
	}
	fresh := srv.AddKey(t, "key_fresh", testApp)
	if d, err := e.Check(ctx, fresh); err != nil || !d.Valid || d.Source != SourceService {
		t.Fatalf("a good uncached key after the 429s: %+v, %v; want checked and valid", d, err)
	}
	clk.Add(2 * time.Minute) // past cache_ttl: the known key is asked again
	if d, err := e.Check(ctx, known); err != nil || !d.Valid || d.Source != SourceService {
		t.Fatalf("a good key past cache_ttl: %+v, %v; want checked and valid", d, err)
	}
	for _, c := range obs.outcomes()[1:6] {
		if c.label() != "429" {
			t.Fatalf("a 429 reported as %q", c.label())
		}
	}
	if obs.stale.Load() != 0 {
		t.Fatalf("%d stale answers served", obs.stale.Load())
	}

	// Should the key service ever answer 429 for a key cached as valid,
	// that refusal is not an outage either: nothing stale stands in.
	svc := newFakeService()
	e2 := newTestEngine(t, Config{CacheTTL: time.Minute, StaleIfError: time.Hour, Now: clk.Now}, svc, obs)
	key := svc.addKey(t, testApp, "key_st", time.Time{})
	if d, err := e2.Check(ctx, key); err != nil || !d.Valid {
		t.Fatalf("setup: %+v, %v", d, err)
	}
	clk.Add(2 * time.Minute)
	svc.setErr(&StatusError{Status: 429})
	if d, err := e2.Check(ctx, key); !errors.Is(err, ErrThrottled) || d.Valid {
		t.Fatalf("a stale key refused with 429: %+v, %v; want ErrThrottled, not the stale answer", d, err)
	}
	if obs.stale.Load() != 0 {
		t.Fatalf("%d stale answers served", obs.stale.Load())
	}
}
