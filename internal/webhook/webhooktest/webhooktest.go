// Package webhooktest is for tests of webhooks: a receiver on 127.0.0.1
// that records what it gets, and a check of each delivery's signature by
// the Standard Webhooks reference library (the npm standardwebhooks
// package pinned in tools/standardwebhooks, run by node).
package webhooktest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Request is a delivery a receiver got, with its clock's reading then.
type Request struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// Receiver is a webhook receiver on 127.0.0.1.
type Receiver struct {
	URL string

	mu     sync.Mutex
	got    []Request
	answer func(n int, r Request) int
	now    func() time.Time
}

// NewReceiver starts a receiver that answers answer(n, request) for the
// n-th request (from 1), or 200 when answer is nil; now is its clock
// (time.Now when nil). It stops when the test ends.
func NewReceiver(t testing.TB, now func() time.Time, answer func(n int, r Request) int) *Receiver {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	r := &Receiver{answer: answer, now: now}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		got := Request{Header: req.Header.Clone(), Body: body, At: r.now()}
		r.mu.Lock()
		r.got = append(r.got, got)
		n := len(r.got)
		r.mu.Unlock()
		status := http.StatusOK
		if r.answer != nil {
			status = r.answer(n, got)
		}
		w.WriteHeader(status)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.URL = "http://" + ln.Addr().String() + "/hook"
	return r
}

// Requests returns what the receiver got so far, in order.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.got...)
}

// toolDir is tools/standardwebhooks of this module.
func toolDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "tools", "standardwebhooks")
}

// Verify checks every request's signature with secret through the
// reference library, at the receiver's clock of its arrival, and fails the
// test for each it refuses. Without node or the installed library it skips
// the test (fails under CI=true): scripts/ensure-standardwebhooks.sh, which
// make test runs, installs it.
func Verify(t testing.TB, secret string, reqs []Request) {
	t.Helper()
	dir := toolDir()
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil || serr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node or the standardwebhooks package is missing: run scripts/ensure-standardwebhooks.sh")
		}
		t.Skip("node or the standardwebhooks package is missing: run scripts/ensure-standardwebhooks.sh (make test does)")
	}
	type msg struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		Now     int64             `json:"now"`
	}
	in := make([]msg, 0, len(reqs))
	for _, r := range reqs {
		h := map[string]string{}
		for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			h[k] = r.Header.Get(k)
		}
		in = append(in, msg{Secret: secret, Headers: h, Body: string(r.Body), Now: r.At.UnixMilli()})
	}
	b, _ := json.Marshal(in)
	cmd := exec.Command(node, filepath.Join(dir, "verify.js"))
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify.js: %v: %s", err, stderr.String())
	}
	var verdicts []string
	if err := json.Unmarshal(out, &verdicts); err != nil || len(verdicts) != len(reqs) {
		t.Fatalf("node verify.js answered %q (%v)", out, err)
	}
	for i, v := range verdicts {
		if v != "ok" {
			t.Errorf("delivery %d (webhook-id %s): the reference library refuses it: %s", i+1, reqs[i].Header.Get("webhook-id"), v)
		}
	}
}
