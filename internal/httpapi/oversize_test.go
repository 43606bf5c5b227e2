package httpapi_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/console"
	"github.com/appkeys/appkeys/internal/httpapi"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// oversize is a body well past httpapi.MaxBodyBytes, and past the 256 KiB
// that Go's server reads on its own after a handler that did not.
const oversize = 3 << 20

// withConsole mounts the web console, which shares the API's mux and so
// its body limit.
var withConsole = servicetest.WithConfig(func(c *keyserver.Config) { c.Console = console.Mount })

// oversizeRequest is one kind of request that carries a body too big.
type oversizeRequest struct {
	name, method, path, token, contentType string
	prefix                                 string // the body's first bytes; the rest is padding
}

func oversizeRequests(ownerTok, verifierTok string) []oversizeRequest {
	const jsonCT, formCT = "application/json", "application/x-www-form-urlencoded"
	return []oversizeRequest{
		{"JSON route, valid token", "POST", "/v1/apps", ownerTok, jsonCT, `{"name":"`},
		{"JSON route, invalid token", "POST", "/v1/apps", "aku_not-a-token", jsonCT, `{"name":"`},
		{"JSON route, no token", "POST", "/v1/secrets", "", jsonCT, `{"name":"`},
		{"JSON route, syntax error first", "POST", "/v1/apps", ownerTok, jsonCT, `}}}`},
		{"verify", "POST", "/v1/verify", verifierTok, jsonCT, `{"key":"`},
		{"DELETE with a body", "DELETE", "/v1/keys/key_nope", ownerTok, jsonCT, ""},
		{"console login form", "POST", "/login", "", formCT, "token="},
		{"console form, no session", "POST", "/apps", "", formCT, "name="},
	}
}

// A body over the limit is answered 413 payload_too_large, whatever the
// route, the token or the body's first bytes, and the client always gets
// that answer: never a connection reset or a broken pipe mid-send. With a
// Content-Length the answer comes before anything reads the body; a
// chunked body is found too big as it is read.
func TestOversizedBodyIsAlways413NeverAReset(t *testing.T) {
	w := newWorld(t, withConsole)
	const rounds = 20
	for _, rq := range oversizeRequests(w.ownerTok, w.appA.VerifierToken) {
		body := []byte(rq.prefix + strings.Repeat("a", oversize-len(rq.prefix)))
		for _, chunked := range []bool{false, true} {
			name := rq.name + ", Content-Length"
			if chunked {
				name = rq.name + ", chunked"
			}
			t.Run(name, func(t *testing.T) {
				// A transport of its own: a connection closed after one
				// answer is not handed to the next subtest.
				tr := &http.Transport{}
				defer tr.CloseIdleConnections()
				c := &http.Client{Transport: tr, Timeout: 30 * time.Second,
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				// Every round is sent, and the outcomes tallied, so a failure
				// shows both the wrong answers and the resets.
				outcomes := map[string]int{}
				for range rounds {
					outcomes[sendOversized(t, c, w.svc.URL, rq, body, chunked)]++
				}
				if outcomes["413"] != rounds {
					t.Errorf("%s %s, %d rounds: %v; want 413 every time", rq.method, rq.path, rounds, outcomes)
				}
			})
		}
	}
	// The service still answers, and wrote nothing.
	apps, err := w.owner.ListApps(ctx(t))
	must(t, err)
	if len(apps) != 2 {
		t.Errorf("apps after refused bodies: %d, want the world's 2", len(apps))
	}
}

// Over HTTPS the same holds on HTTP/2, where a stream can be refused
// without closing the connection.
func TestOversizedBodyOverHTTP2(t *testing.T) {
	withTLS, pool := servicetest.WithTLS(t)
	svc := servicetest.Start(t, withConsole, withTLS)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest("POST", svc.URL+"/v1/apps", strings.NewReader(`{"name":"h2","kind":"cloud_function"}`))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+svc.OwnerToken)
	res, err := c.Do(req)
	must(t, err)
	var app struct {
		VerifierToken string `json:"verifier_token"`
	}
	must(t, json.NewDecoder(res.Body).Decode(&app))
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || res.ProtoMajor != 2 {
		t.Fatalf("create an app: %d over %s, want 201 over HTTP/2", res.StatusCode, res.Proto)
	}
	for _, rq := range oversizeRequests(svc.OwnerToken, app.VerifierToken) {
		body := []byte(rq.prefix + strings.Repeat("a", oversize-len(rq.prefix)))
		for _, chunked := range []bool{false, true} {
			outcomes := map[string]int{}
			for range 5 {
				outcomes[sendOversized(t, c, svc.URL, rq, body, chunked)]++
			}
			if outcomes["413"] != 5 {
				t.Errorf("%s (chunked %v) over HTTP/2, 5 rounds: %v; want 413 every time", rq.name, chunked, outcomes)
			}
		}
	}
}

// sendOversized sends one request and tells what came back: "413" for
// the documented answer, else the status and the start of the body, or
// the transport error.
func sendOversized(t *testing.T, c *http.Client, base string, rq oversizeRequest, body []byte, chunked bool) string {
	req, err := http.NewRequest(rq.method, base+rq.path, bytes.NewReader(body))
	must(t, err)
	if chunked {
		req.ContentLength = -1 // sent as Transfer-Encoding: chunked
	}
	req.Header.Set("Content-Type", rq.contentType)
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	res, err := c.Do(req)
	if err != nil {
		return "transport error: " + err.Error()
	}
	got, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	switch {
	case rerr != nil:
		return fmt.Sprintf("%d, then reading the answer: %v", res.StatusCode, rerr)
	case res.StatusCode != http.StatusRequestEntityTooLarge:
		return fmt.Sprintf("%d %.60q", res.StatusCode, got)
	}
	checkErrorBody(t, rq.name, res.Header.Get("Content-Type"), got, "payload_too_large")
	return "413"
}

// A raw client that sends its headers and then its body slowly gets the
// 413 before it has sent the body, then may finish sending without an
// error (the server reads and drops the rest) and sees the connection
// closed in order. Nothing here waits on time: the client stops sending
// and reads, which only works if the server answers without the body. A
// client that sends it all before reading (as simple clients do), with a
// Content-Length or chunked, gets its writes through and then the 413,
// not a broken pipe or a reset.
func TestOversizedBodyIsAnsweredBeforeItArrives(t *testing.T) {
	// More than loopback's socket buffers hold, so that a client sending
	// it all is still sending when the server would close.
	const rawOversize = 16 << 20
	const all = -1
	w := newWorld(t, withConsole)
	for _, rq := range oversizeRequests(w.ownerTok, w.appA.VerifierToken) {
		body := []byte(rq.prefix + strings.Repeat("a", rawOversize-len(rq.prefix)))
		for _, v := range []struct {
			chunked   bool
			sentFirst int // bytes of the body sent before reading; all for all
		}{{false, 0}, {false, 64 << 10}, {false, all}, {true, all}} {
			head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: appkeys\r\nContent-Type: %s\r\n", rq.method, rq.path, rq.contentType)
			if rq.token != "" {
				head += "Authorization: Bearer " + rq.token + "\r\n"
			}
			wire, name := body, rq.name+", Content-Length"
			if v.chunked {
				wire, name = chunk(body, 64<<10), rq.name+", chunked"
				head += "Transfer-Encoding: chunked\r\n\r\n"
			} else {
				head += fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
			}
			first := v.sentFirst
			if first == all {
				first, name = len(wire), name+", all before reading"
			} else {
				name += fmt.Sprintf(", %d bytes before reading", first)
			}
			t.Run(name, func(t *testing.T) {
				conn, err := net.Dial("tcp", strings.TrimPrefix(w.svc.URL, "http://"))
				must(t, err)
				defer conn.Close()
				// A bound, not a measure: without the fix the server waits
				// for body bytes that this client holds back.
				must(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
				if _, err := conn.Write(append([]byte(head), wire[:first]...)); err != nil {
					t.Fatalf("sending the headers and %d bytes of the body: %v", first, err)
				}

				br := bufio.NewReader(conn)
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no answer after %d bytes of the body: %v", first, err)
				}
				got, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Fatalf("reading the answer after %d bytes of the body: %v", first, err)
				}
				if res.StatusCode != http.StatusRequestEntityTooLarge {
					t.Fatalf("answered %d, want 413: %.200s", res.StatusCode, got)
				}
				checkErrorBody(t, rq.name, res.Header.Get("Content-Type"), got, "payload_too_large")
				if !res.Close {
					t.Errorf("the 413 does not say Connection: close")
				}

				// The rest of the body, in pieces: every write goes through.
				for off := first; off < len(wire); off += 64 << 10 {
					end := min(off+64<<10, len(wire))
					if _, err := conn.Write(wire[off:end]); err != nil {
						t.Fatalf("sending the body after the 413, at byte %d of %d: %v", off, len(wire), err)
					}
				}
				if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
					t.Fatalf("after the body: %q, %v; want the connection closed in order", rest, err)
				}
			})
		}
	}
}

// chunk encodes body with HTTP/1.1 chunked transfer coding.
func chunk(body []byte, size int) []byte {
	var b bytes.Buffer
	for off := 0; off < len(body); off += size {
		end := min(off+size, len(body))
		fmt.Fprintf(&b, "%x\r\n", end-off)
		b.Write(body[off:end])
		b.WriteString("\r\n")
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// A client that asks before sending (Expect: 100-continue, as curl does for
// big bodies) is told 413 at once and is never asked for the body.
func TestOversizedBodyRefusedBeforeContinue(t *testing.T) {
	w := newWorld(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(w.svc.URL, "http://"))
	must(t, err)
	defer conn.Close()
	must(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "POST /v1/apps HTTP/1.1\r\nHost: appkeys\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", w.ownerTok, oversize)
	must(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	must(t, err)
	defer res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("answered %d, want 413 without a 100 Continue", res.StatusCode)
	}
}

// The limit itself holds: a body of exactly MaxBodyBytes is read (and
// found wrong for other reasons), one byte more is not.
func TestBodyLimitBoundary(t *testing.T) {
	w := newWorld(t)
	pad := func(n int) string {
		const head = `{"name":"x","kind":"cloud_function"}`
		return head + strings.Repeat(" ", n-len(head))
	}
	w.do("POST", "/v1/apps", w.ownerTok, pad(httpapi.MaxBodyBytes)).WantStatus(http.StatusCreated)
	w.do("POST", "/v1/apps", w.ownerTok, pad(httpapi.MaxBodyBytes+1)).WantError(http.StatusRequestEntityTooLarge, "payload_too_large")
}
