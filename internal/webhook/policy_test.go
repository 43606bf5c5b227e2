package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server starts a receiver on 127.0.0.1 running h and counts its requests.
func server(t *testing.T, h http.HandlerFunc) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &n
}

func post(c *http.Client, url string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader("{}"))
	res, err := c.Do(req)
	if err == nil {
		res.Body.Close()
	}
	return res, err
}

// Without AllowPrivate, loopback, private, link-local (metadata) and
// unspecified addresses are refused when the connection is made, whether
// named by a literal or by a name that resolves to one; the receiver
// behind them hears nothing.
func TestClientRefusesAddressesThatAreNotPublic(t *testing.T) {
	addr, got := server(t, func(w http.ResponseWriter, r *http.Request) {})
	_, port, _ := net.SplitHostPort(addr)
	c := NewClient(Policy{}, 5*time.Second)
	for _, u := range []string{
		"http://" + addr + "/", "http://localhost:" + port + "/", "http://[::1]:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/",
		"http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://192.168.1.1/", "http://100.64.0.1/", "http://0.0.0.0:" + port + "/", "http://[fd00::1]/",
	} {
		if _, err := post(c, u); !errors.Is(err, ErrRefusedAddress) {
			t.Errorf("POST %s: %v; want it refused", u, err)
		}
	}
	if got.Load() != 0 {
		t.Fatalf("the receiver on 127.0.0.1 got %d requests", got.Load())
	}
	// Allowing 127.0.0.1/32 lets that address alone through.
	c = NewClient(Policy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, 5*time.Second)
	if res, err := post(c, "http://"+addr+"/"); err != nil || res.StatusCode != 200 {
		t.Fatalf("allowed 127.0.0.1: %v", err)
	}
	for _, u := range []string{"http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]:" + port + "/"} {
		if _, err := post(c, u); !errors.Is(err, ErrRefusedAddress) {
			t.Errorf("POST %s with 127.0.0.1/32 allowed: %v; want it refused", u, err)
		}
	}
}

func TestPolicyAllowsPublicAddresses(t *testing.T) {
	for _, a := range []string{"1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"} {
		if !(Policy{}).Allowed(netip.MustParseAddr(a)) {
			t.Errorf("%s refused", a)
		}
	}
	if p, err := ParsePrefixes("10.0.0.0/8, 127.0.0.1"); err != nil || len(p) != 2 || p[1].Bits() != 32 {
		t.Fatalf("ParsePrefixes = %v, %v", p, err)
	}
	if _, err := ParsePrefixes("10.0.0.0/99"); err == nil {
		t.Fatal("a bad prefix was accepted")
	}
}

// A redirect is not followed (it is a failed attempt): a receiver cannot
// send a delivery to an address it could not register.
func TestAttemptFollowsNoRedirect(t *testing.T) {
	target, reached := server(t, func(w http.ResponseWriter, r *http.Request) {})
	from, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+target+"/", http.StatusTemporaryRedirect)
	})
	w := NewWorker(Config{Client: NewClient(Policy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, 5*time.Second)})
	a := w.Attempt(context.Background(), Message{ID: "msg_1", URL: "http://" + from + "/", Payload: []byte("{}"), CreatedAt: time.Now()})
	if a.Delivered || a.Status != http.StatusTemporaryRedirect || a.Next == nil || reached.Load() != 0 {
		t.Fatalf("attempt %+v; the redirect's target got %d requests", a, reached.Load())
	}
}

// A receiver that answers without end, or never answers, holds an attempt
// no longer than the client's timeout and no more than MaxResponseBody is
// read of it.
func TestAttemptIsBoundedAgainstHugeAndSlowReceivers(t *testing.T) {
	var written atomic.Int64
	huge, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for range 16 << 10 { // up to 1 GiB
			n, err := w.Write(buf)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	allow := Policy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	w := NewWorker(Config{Client: NewClient(allow, 300*time.Millisecond)})
	a := w.Attempt(context.Background(), Message{ID: "msg_1", URL: "http://" + huge + "/", Payload: []byte("{}"), CreatedAt: time.Now()})
	if !a.Delivered || a.Status != 200 {
		t.Fatalf("huge answer: %+v", a)
	}
	if n := written.Load(); n >= 1<<30 {
		t.Fatalf("the receiver wrote its whole %d bytes: the answer was read to its end", n)
	}
	a = w.Attempt(context.Background(), Message{ID: "msg_2", URL: "http://" + slow + "/", Payload: []byte("{}"), CreatedAt: time.Now(), Attempts: 0})
	if a.Delivered || a.Error != "timed out" || a.Next == nil {
		t.Fatalf("slow receiver: %+v", a)
	}
}

// After 24 hours of failures an attempt gives up, with a reason that
// names no URL.
func TestAttemptGivesUpAfter24Hours(t *testing.T) {
	addr, _ := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	now := time.Date(2027, 1, 2, 3, 0, 0, 0, time.UTC)
	w := NewWorker(Config{Now: func() time.Time { return now }, Client: NewClient(Policy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, 5*time.Second)})
	url := "http://" + addr + "/secret-path-token"
	a := w.Attempt(context.Background(), Message{ID: "msg_1", URL: url, Payload: []byte("{}"), CreatedAt: now.Add(-23*time.Hour - 30*time.Minute), Attempts: 20})
	if a.Next != nil || a.GiveUp == "" || strings.Contains(a.GiveUp, "secret-path-token") || !strings.Contains(a.GiveUp, "HTTP 502") {
		t.Fatalf("attempt %+v", a)
	}
	a = w.Attempt(context.Background(), Message{ID: "msg_1", URL: url, Payload: []byte("{}"), CreatedAt: now.Add(-time.Hour), Attempts: 2})
	if a.Next == nil || a.Next.Sub(now) < 108*time.Second || a.Next.Sub(now) > 132*time.Second {
		t.Fatalf("third retry due %v after now; want 2 min ± 10%%", a.Next.Sub(now))
	}
}
