package keyserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// parkWorld is a key service with one app and a key to revoke.
type parkWorld struct {
	svc   *servicetest.Service
	owner *client.Client
	app   *client.CreatedApp
	addr  string
}

func newParkWorld(tb testing.TB, opts ...servicetest.Option) *parkWorld {
	tb.Helper()
	svc := servicetest.Start(tb, opts...)
	owner, err := client.New(svc.URL, svc.OwnerToken, client.WithHTTPClient(insecureHTTP()))
	if err != nil {
		tb.Fatal(err)
	}
	app, err := owner.CreateApp(context.Background(), client.CreateAppRequest{Name: "fn", Kind: "cloud_function"})
	if err != nil {
		tb.Fatal(err)
	}
	addr := strings.TrimPrefix(strings.TrimPrefix(svc.URL, "http://"), "https://")
	return &parkWorld{svc: svc, owner: owner, app: app, addr: addr}
}

func (w *parkWorld) newKey(tb testing.TB) string {
	tb.Helper()
	k, err := w.owner.CreateKey(context.Background(), w.app.ID, client.CreateKeyRequest{Name: fmt.Sprintf("k%d", time.Now().UnixNano()), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	return k.ID
}

// insecureHTTP is the client the owner uses; the TLS test swaps in its CA.
var insecureHTTP = func() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

func (w *parkWorld) head(tb testing.TB) int64 {
	tb.Helper()
	v, err := client.New(w.svc.URL, w.app.VerifierToken, client.WithHTTPClient(insecureHTTP()))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := v.EventsHead(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// poll writes a long-poll request on c.
func (w *parkWorld) poll(tb testing.TB, c net.Conn, after int64, wait string) {
	tb.Helper()
	req := fmt.Sprintf("GET /v1/events?after=%d&wait=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", after, wait, w.addr, w.app.VerifierToken)
	if _, err := io.WriteString(c, req); err != nil {
		tb.Fatal(err)
	}
}

type pollAnswer struct {
	Events []struct {
		Type  string `json:"type"`
		KeyID string `json:"key_id"`
	} `json:"events"`
	Next int64 `json:"next"`
}

func readAnswer(tb testing.TB, br *bufio.Reader) (*http.Response, pollAnswer) {
	tb.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	var a pollAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			tb.Fatalf("answer %q: %v", body, err)
		}
	}
	return resp, a
}

func dial(tb testing.TB, addr string) (net.Conn, *bufio.Reader) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

// waitParked waits (bounded) until the service's appkeys_feed_parked is n.
func waitParked(tb testing.TB, s *keyserver.Server, n float64) {
	tb.Helper()
	var got float64
	for range 500 {
		if got = gauge(tb, s, "appkeys_feed_parked"); got == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("appkeys_feed_parked is %v, want %v", got, n)
}

func gauge(tb testing.TB, s *keyserver.Server, name string) float64 {
	tb.Helper()
	resp, err := insecureHTTP().Get(s.URL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v float64
		if _, err := fmt.Sscanf(sc.Text(), name+" %g", &v); err == nil && strings.HasPrefix(sc.Text(), name+" ") {
			return v
		}
	}
	tb.Fatalf("no %s in /metrics", name)
	return 0
}

// TestParkedLongPollAnswersAndKeepsItsConnection: a waiting long-poll is
// parked off net/http, answered with the revocation as before, with the
// same headers as a long-poll held in net/http, and its connection serves
// the next request.
func TestParkedLongPollAnswersAndKeepsItsConnection(t *testing.T) {
	headers := map[bool][]string{}
	for _, held := range []bool{false, true} {
		w := newParkWorld(t, servicetest.WithConfig(func(c *keyserver.Config) { c.HeldLongPolls = held }))
		key := w.newKey(t)
		head := w.head(t)
		c, br := dial(t, w.addr)
		w.poll(t, c, head, "30s")
		want := 1.0
		if held {
			want = 0
		}
		// Held or parked, the long-poll is waiting on the feed.
		for i := 0; gauge(t, w.svc.Server, "appkeys_feed_waiting") != 1; i++ {
			if i == 500 {
				t.Fatal("the long-poll never waited")
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitParked(t, w.svc.Server, want)
		if err := w.owner.RevokeKey(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		resp, a := readAnswer(t, br)
		if resp.StatusCode != http.StatusOK || len(a.Events) != 1 || a.Events[0].KeyID != key || a.Events[0].Type != "key.revoked" || a.Next <= head {
			t.Fatalf("held=%v: answer %d %+v, want the revocation of %s after %d", held, resp.StatusCode, a, key, head)
		}
		if resp.Close {
			t.Fatalf("held=%v: the answer closes the connection", held)
		}
		for name := range resp.Header {
			headers[held] = append(headers[held], name)
		}
		slices.Sort(headers[held])
		// The same connection takes the next long-poll.
		w.poll(t, c, a.Next, "0s")
		if resp, a2 := readAnswer(t, br); resp.StatusCode != http.StatusOK || len(a2.Events) != 0 || a2.Next != a.Next {
			t.Fatalf("held=%v: next answer on the connection %d %+v, want none after %d", held, resp.StatusCode, a2, a.Next)
		}
		waitParked(t, w.svc.Server, 0)
	}
	if !slices.Equal(headers[false], headers[true]) {
		t.Fatalf("a parked answer's headers %v differ from a held one's %v", headers[false], headers[true])
	}
}

// TestParkedLongPollRunsOut: a parked long-poll whose wait runs out with
// no news answers no events and its cursor, and the connection lives on;
// the request is counted once in appkeys_http_requests_total.
func TestParkedLongPollRunsOut(t *testing.T) {
	w := newParkWorld(t)
	head := w.head(t)
	before := gauge(t, w.svc.Server, `appkeys_http_requests_total{code="200",route="GET /v1/events"}`)
	c, br := dial(t, w.addr)
	for i := range 3 {
		w.poll(t, c, head, "100ms")
		resp, a := readAnswer(t, br)
		if resp.StatusCode != http.StatusOK || len(a.Events) != 0 || a.Next != head {
			t.Fatalf("poll %d: %d %+v, want no events and next %d", i, resp.StatusCode, a, head)
		}
	}
	after := gauge(t, w.svc.Server, `appkeys_http_requests_total{code="200",route="GET /v1/events"}`)
	if after-before != 3 {
		t.Fatalf("3 long-polls counted %v times", after-before)
	}
}

// TestPipelinedLongPollIsNotLost: a client that sends its next request
// before the long-poll's answer (pipelining) gets the answer and a closed
// connection, never a lost or garbled request: it sends the second again
// on a new connection, as HTTP/1.1 clients do.
func TestPipelinedLongPollIsNotLost(t *testing.T) {
	w := newParkWorld(t)
	head := w.head(t)
	c, br := dial(t, w.addr)
	req := fmt.Sprintf("GET /v1/events?after=%d&wait=100ms HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", head, w.addr, w.app.VerifierToken)
	if _, err := io.WriteString(c, req+req); err != nil {
		t.Fatal(err)
	}
	resp, a := readAnswer(t, br)
	if resp.StatusCode != http.StatusOK || a.Next != head {
		t.Fatalf("first answer %d %+v", resp.StatusCode, a)
	}
	if !resp.Close {
		t.Fatal("the first answer keeps a connection whose next request net/http had read ahead")
	}
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Fatal("a second answer came on a connection announced closed")
	}
}

// TestGoneClientFreesItsParkedLongPoll: clients that hang up while parked
// leave nothing behind once their wait runs out.
func TestGoneClientFreesItsParkedLongPoll(t *testing.T) {
	w := newParkWorld(t)
	head := w.head(t)
	var conns []net.Conn
	for range 20 {
		c, _ := dial(t, w.addr)
		w.poll(t, c, head, "300ms")
		conns = append(conns, c)
	}
	waitParked(t, w.svc.Server, 20)
	for _, c := range conns {
		c.Close()
	}
	waitParked(t, w.svc.Server, 0)
}

// TestCloseAnswersParkedLongPolls: stopping the service answers its parked
// long-polls at once (no events, their cursor) instead of waiting out
// their minute, and Close does not hang on them.
func TestCloseAnswersParkedLongPolls(t *testing.T) {
	w := newParkWorld(t)
	head := w.head(t)
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var conns []conn
	for range 5 {
		c, br := dial(t, w.addr)
		w.poll(t, c, head, "60s")
		conns = append(conns, conn{c, br})
	}
	waitParked(t, w.svc.Server, 5)
	// Far below the long-polls' minute: Close must not wait them out.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := w.svc.Server.Close(ctx); err != nil {
		t.Fatalf("close with parked long-polls: %v", err)
	}
	w.svc.Server = nil
	for i, c := range conns {
		resp, a := readAnswer(t, c.br)
		if resp.StatusCode != http.StatusOK || len(a.Events) != 0 || a.Next != head || !resp.Close {
			t.Fatalf("long-poll %d at close: %d %+v (close %v)", i, resp.StatusCode, a, resp.Close)
		}
	}
	t.Logf("closed in %v", time.Since(start))
}

// TestParkedLongPollOverTLS: over TLS, an HTTP/1.1 long-poll parks and is
// answered on its TLS connection, which then serves the next request; an
// HTTP/2 one (what Go clients negotiate) waits in net/http as before.
func TestParkedLongPollOverTLS(t *testing.T) {
	opt, pool := servicetest.WithTLS(t)
	orig := insecureHTTP
	insecureHTTP = func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	}
	t.Cleanup(func() { insecureHTTP = orig })
	w := newParkWorld(t, opt)
	key := w.newKey(t)
	head := w.head(t)
	raw, err := tls.Dial("tcp", w.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(raw)
	w.poll(t, raw, head, "30s")
	waitParked(t, w.svc.Server, 1)
	if err := w.owner.RevokeKey(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	resp, a := readAnswer(t, br)
	if resp.StatusCode != http.StatusOK || len(a.Events) != 1 || a.Events[0].KeyID != key {
		t.Fatalf("answer over TLS %d %+v", resp.StatusCode, a)
	}
	w.poll(t, raw, a.Next, "0s")
	if resp, _ := readAnswer(t, br); resp.StatusCode != http.StatusOK {
		t.Fatalf("next request on the TLS connection: %d", resp.StatusCode)
	}
	waitParked(t, w.svc.Server, 0)

	// HTTP/2 does not park.
	v, err := client.New(w.svc.URL, w.app.VerifierToken, client.WithHTTPClient(insecureHTTP()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := v.Events(context.Background(), a.Next, 2*time.Second)
		done <- err
	}()
	for i := 0; gauge(t, w.svc.Server, "appkeys_feed_waiting") != 1; i++ {
		if i == 500 {
			t.Fatal("the HTTP/2 long-poll never waited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := gauge(t, w.svc.Server, "appkeys_feed_parked"); n != 0 {
		t.Fatalf("an HTTP/2 long-poll parked (%v)", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
