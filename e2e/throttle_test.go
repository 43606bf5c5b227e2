package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
)

// TestThrottleHoldsUnderConcurrency: with failed_attempts 3/1h, a client
// sending 40 bad keys at once from one address, over 40 HTTP/1.1
// connections or 40 streams of one HTTP/2 connection, gets at most 3 of
// them to the key service (as the key service counts its verify calls);
// the rest, and its next request, get 429 with Retry-After; a good key
// from another address still gets in. A client that sends a key and hangs
// up at once is charged all the same: after 3 of those, 429.
func TestThrottleHoldsUnderConcurrency(t *testing.T) {
	s := newStack(t)
	s.globals = []string{"servers {\n\t\tprotocols h1 h2c\n\t}"}
	a := s.app("guessed")
	site := s.site(a, "failed_attempts 3/1h")
	// Verify calls take a second, so that all 40 requests are in the
	// sidecar before the first verdict is back.
	p := newKSProxy(t, s.ks.URL)
	p.verifyDelay.Store(int64(time.Second))
	s.load(p.URL, site)

	const n, budget = 40, 3
	for _, tc := range []struct {
		name, from string
		h2c        bool
	}{
		{"http1.1, 40 connections", "127.0.0.1", false},
		{"h2c, 40 streams of one connection", "127.0.0.3", true},
	} {
		hc, dials := clientFrom(t, tc.from, tc.h2c)
		// A request without a key opens the connection (h2c's streams then
		// share it) and costs no attempt.
		if got := send(t, hc, site, "", tc.h2c); got.status != 401 {
			t.Fatalf("%s: no key: %d", tc.name, got.status)
		}
		before := s.verifyCalls()
		statuses := make([]int, n)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-gate
				statuses[i] = send(t, hc, site, newBadKey(t), tc.h2c).status
			})
		}
		close(gate)
		wg.Wait()
		counts := map[int]int{}
		for _, st := range statuses {
			counts[st]++
		}
		calls := s.verifyCalls() - before
		t.Logf("%s: answers %v, verify calls %v, connections %d", tc.name, counts, calls, dials.Load())
		if calls > budget || counts[401] > budget || counts[401]+counts[429] != n {
			t.Errorf("%s: %d bad keys at once: answers %v, %v verify calls at the key service; want at most %d calls and 401s, the rest 429",
				tc.name, n, counts, calls, budget)
		}
		if tc.h2c && dials.Load() != 1 {
			t.Errorf("%s: %d connections; want the 40 streams on one", tc.name, dials.Load())
		}
		got := send(t, hc, site, newBadKey(t), tc.h2c)
		if ra, err := strconv.Atoi(got.header.Get("Retry-After")); got.status != 429 || err != nil || ra < 1 {
			t.Errorf("the next bad key from %s: %d, Retry-After %q; want 429 with whole seconds", tc.from, got.status, got.header.Get("Retry-After"))
		}
		other, _ := clientFrom(t, "127.0.0.2", false)
		good := s.key(nil, a.ID, time.Now().Add(time.Hour))
		if got := send(t, other, site, good.PlainKey, false); got.status != 200 {
			t.Fatalf("%s: a good key from another address: %d (%s)", tc.name, got.status, got.body)
		}
	}

	// Send then hang up: each of these is charged too, whether or not its
	// key reached the key service (a request that gives up before its
	// call has a verify slot is never sent).
	{
		const from = "127.0.0.4"
		for range budget {
			abandon(t, from, site, newBadKey(t))
		}
		hc, _ := clientFrom(t, from, false)
		if got := send(t, hc, site, newBadKey(t), false); got.status != 429 {
			t.Fatalf("after %d abandoned bad keys: %d; want 429", budget, got.status)
		}
	}
}

// clientFrom is an HTTP client whose connections come from ip (all of
// 127.0.0.0/8 is the loopback): over HTTP/1.1 with a connection per
// request, or over unencrypted HTTP/2 (h2c) only. dials counts its
// connections.
func clientFrom(t *testing.T, ip string, h2c bool) (*http.Client, *atomic.Int64) {
	t.Helper()
	dials := new(atomic.Int64)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: !h2c,
	}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, dials
}

// send is GET / of site with key, by hc; h2 asks that it went over HTTP/2.
func send(t *testing.T, hc *http.Client, site Site, key string, h2 bool) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, site.URL(), nil)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if h2 && resp.ProtoMajor != 2 {
		t.Errorf("answered over %s; want HTTP/2", resp.Proto)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// abandon writes a request with key to site from ip over a raw TCP
// connection and closes it at once, without reading the answer.
func abandon(t *testing.T, ip string, site Site, key string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", site.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-API-Key: %s\r\n\r\n", site.Port, key); err != nil {
		t.Fatal(err)
	}
	// Hang up: the server reads the end of the stream and cancels the
	// request. Reading until the server closes too is how the test knows
	// the sidecar is done with the request (whatever it answered).
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("an abandoned request was not done with within 10 s: %v", err)
	}
}

// newBadKey is a well-formed key the key service does not know.
func newBadKey(t *testing.T) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
