package loadgen

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsAnswersAndErrors(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Test") != "yes" || string(b) != "ping" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if served.Add(1)%2 == 0 {
			w.Write([]byte("odd"))
			return
		}
		w.Write([]byte("pong"))
	}))
	defer srv.Close()

	h := http.Header{"X-Test": {"yes"}}
	res, err := Run(context.Background(), Config{
		Workers:  4,
		Duration: 200 * time.Millisecond,
		Warmup:   50 * time.Millisecond,
		Next: func(int, *rand.Rand) Request {
			return Request{Method: http.MethodPost, URL: srv.URL, Header: h, Body: []byte("ping")}
		},
		Check: func(status int, body []byte) bool { return status == 200 && string(body) == "pong" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.RPS <= 0 {
		t.Fatalf("no requests measured: %+v", res)
	}
	// Every other answer is refused by Check; the warm-up shifts the split by at most one per worker.
	if res.Errors < res.Requests/2-4 || res.Errors > res.Requests/2+4 {
		t.Errorf("errors = %d of %d requests; want about half", res.Errors, res.Requests)
	}
	if res.FirstError == "" {
		t.Error("FirstError is empty")
	}
	if !(res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("percentiles out of order: %+v", res)
	}
	if int64(res.Requests) > served.Load() {
		t.Errorf("measured %d requests but the server answered %d", res.Requests, served.Load())
	}
}

func TestRunWithoutNext(t *testing.T) {
	if _, err := Run(context.Background(), Config{}); err == nil {
		t.Fatal("Run without Next: want an error")
	}
}

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0, 1}} {
		if got := Percentile(lat, tc.p); got != tc.want {
			t.Errorf("Percentile(1..100, %v) = %v; want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v; want 0", got)
	}
}
