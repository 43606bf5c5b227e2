package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var keyRE = regexp.MustCompile(`cak_[0-9A-Za-z]{49}`)

// startUp runs `appkeys up` in-process on free ports and waits for its
// banner; it returns the printed key, the sidecar URL and a stop function.
func startUp(t *testing.T, data string) (key, sidecar string, f *upFlags, stop func()) {
	t.Helper()
	f = &upFlags{
		serve: serveFlags{addr: freeAddr(t), data: data, maxLifetime: "365d", logLevel: "warn", logFormat: "text",
			failureRate: keyserver.DefaultVerifyFailureRate, failureBurst: keyserver.DefaultVerifyFailureBurst},
		listen:   freeAddr(t),
		upstream: freeAddr(t),
		admin:    freeAddr(t),
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &servicetest.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- runUp(ctx, f, out, io.Discard) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("up stopped early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("up printed no banner in 30s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	key = keyRE.FindString(out.String())
	if key == "" {
		t.Fatalf("no key in the banner:\n%s", out.String())
	}
	if !strings.Contains(out.String(), `curl -H "Authorization: Bearer `+key+`" http://`+f.listen+`/`) {
		t.Fatalf("no curl line in the banner:\n%s", out.String())
	}
	return key, "http://" + f.listen, f, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("up did not stop cleanly: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("up did not stop within 30s of Ctrl-C")
		}
	}
}

func get(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestUp runs the one-machine stack as a newcomer would: the printed curl
// works, no key and a revoked key get 401, Ctrl-C stops everything, and a
// second run on the same data works again.
func TestUp(t *testing.T) {
	data := t.TempDir()
	key, sidecar, f, stop := startUp(t, data)
	if code, body := get(t, sidecar+"/", key); code != http.StatusOK || !strings.Contains(body, "Hello from the sample Cloud Function") {
		t.Fatalf("printed key: %d %s", code, body)
	}
	if code, _ := get(t, sidecar+"/", ""); code != http.StatusUnauthorized {
		t.Fatalf("no key: %d, want 401", code)
	}
	owner, err := client.New("http://"+f.serve.addr, readToken(t, data+"/owner.token"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := owner.ListKeys(context.Background(), client.StateActive)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys after up: %v, %v", keys, err)
	}
	if err := owner.RevokeKey(context.Background(), keys[0].ID); err != nil {
		t.Fatal(err)
	}
	var code int
	for i := 0; i < 100; i++ { // the revocation travels the feed; well under a second
		if code, _ = get(t, sidecar+"/", key); code == http.StatusUnauthorized {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d, want 401", code)
	}
	stop()
	if _, err := net.DialTimeout("tcp", f.listen, time.Second); err == nil {
		t.Fatal("the sidecar still listens after Ctrl-C")
	}

	key2, sidecar2, _, stop2 := startUp(t, data)
	defer stop2()
	if key2 == key {
		t.Fatal("the second run printed the first run's key")
	}
	if code, body := get(t, sidecar2+"/", key2); code != http.StatusOK {
		t.Fatalf("second run's key: %d %s", code, body)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
