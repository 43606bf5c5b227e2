package verify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientVerify(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name    string
		status  int
		body    string
		want    Result
		wantErr string
	}{
		{name: "valid", status: 200, body: `{"valid":true,"code":"VALID","key_id":"key_1","key_name":"ci","app_id":"app_1","expires_at":"2031-02-03T04:05:06Z","extra":1}`,
			want: Result{Valid: true, Code: CodeValid, KeyID: "key_1", KeyName: "ci", AppID: "app_1", ExpiresAt: time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)}},
		{name: "revoked", status: 200, body: `{"valid":false,"code":"REVOKED","key_id":"key_1","app_id":"app_1","expires_at":null}`,
			want: Result{Code: CodeRevoked, KeyID: "key_1", AppID: "app_1"}},
		{name: "not found", status: 200, body: `{"valid":false,"code":"NOT_FOUND"}`, want: Result{Code: CodeNotFound}},
		{name: "contradiction", status: 200, body: `{"valid":true,"code":"REVOKED","key_id":"k","app_id":"a"}`, wantErr: "contradicts"},
		{name: "unknown code", status: 200, body: `{"valid":false,"code":"MAYBE"}`, wantErr: "unknown code"},
		{name: "missing valid", status: 200, body: `{"code":"NOT_FOUND"}`, wantErr: "missing"},
		{name: "valid without ids", status: 200, body: `{"valid":true,"code":"VALID"}`, wantErr: "without key_id"},
		{name: "wrong type", status: 200, body: `{"valid":"yes","code":"VALID"}`, wantErr: "decode"},
		{name: "trailing", status: 200, body: `{"valid":false,"code":"NOT_FOUND"} {}`, wantErr: "trailing"},
		{name: "bad expiry", status: 200, body: `{"valid":false,"code":"EXPIRED","expires_at":"tomorrow"}`, wantErr: "expires_at"},
		{name: "bad token", status: 401, body: `{"error":{"code":"unauthorized","message":"bad verifier token"}}`, wantErr: "HTTP 401 (unauthorized: bad verifier token)"},
		{name: "throttled", status: 429, body: `{"error":{"code":"rate_limited","message":"slow down"}}`, wantErr: "HTTP 429"},
		{name: "down", status: 503, body: `oops`, wantErr: "HTTP 503"},
		{name: "too big", status: 200, body: `{"valid":false,"code":"NOT_FOUND","x":"` + strings.Repeat("a", maxBody) + `"}`, wantErr: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPost || r.URL.Path != "/prefix/v1/verify" ||
					r.Header.Get("Authorization") != "Bearer tok" || string(body) != `{"key":"`+key+`"}` {
					t.Errorf("request %s %s auth %q body %s", r.Method, r.URL.Path, r.Header.Get("Authorization"), body)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c, err := NewClient(ClientConfig{BaseURL: srv.URL + "/prefix/", Token: "tok"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			got, err := c.Verify(context.Background(), key)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v; want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), key) {
					t.Fatal("error text contains the key")
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL+"/v1/verify", http.StatusTemporaryRedirect))
	defer srv.Close()
	c, _ := NewClient(ClientConfig{BaseURL: srv.URL, Token: "tok"})
	defer c.CloseIdleConnections()
	_, err := c.Verify(context.Background(), newKey(t))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTemporaryRedirect {
		t.Fatalf("err %v; want a 307 StatusError", err)
	}
	if elsewhere.Load() != 0 {
		t.Fatal("the redirect was followed with the key and token")
	}
}

func TestNewClientRejectsBadConfig(t *testing.T) {
	for _, cfg := range []ClientConfig{
		{BaseURL: "127.0.0.1:8700", Token: "t"},
		{BaseURL: "ftp://host", Token: "t"},
		{BaseURL: "http://host?x=1", Token: "t"},
		{BaseURL: "http://host"},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) accepted", cfg)
		}
	}
	if NewTransport().MaxIdleConnsPerHost < 64 {
		t.Fatal("transport keeps too few idle connections per host")
	}
}

func TestClientEvents(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.RawQuery {
		case "":
			io.WriteString(w, `{"events":[],"next":12}`)
		case "after=12&wait=30s":
			io.WriteString(w, `{"events":[{"seq":13,"type":"key.revoked","key_id":"key_1","app_id":"app_1","at":"2030-01-01T00:00:00Z"}],"next":13}`)
		case "after=1&wait=30s":
			w.WriteHeader(http.StatusGone)
			io.WriteString(w, `{"error":{"code":"cursor_expired","message":"gone"}}`)
		case "after=2&wait=30s":
			io.WriteString(w, `{"events":[{"seq":4,"type":"key.revoked"},{"seq":3,"type":"key.revoked"}],"next":4}`)
		default:
			io.WriteString(w, `{"events":[]}`)
		}
	}))
	defer srv.Close()
	c, _ := NewClient(ClientConfig{BaseURL: srv.URL, Token: "tok"})
	defer c.CloseIdleConnections()
	ctx := context.Background()
	p, err := c.Events(ctx, 99, true, 30*time.Second)
	if err != nil || p.Next != 12 || len(p.Events) != 0 {
		t.Fatalf("head: %+v, %v", p, err)
	}
	p, err = c.Events(ctx, 12, false, 30*time.Second)
	if err != nil || p.Next != 13 || len(p.Events) != 1 || p.Events[0].KeyID != "key_1" || p.Events[0].Type != EventKeyRevoked {
		t.Fatalf("page: %+v, %v", p, err)
	}
	if _, err := c.Events(ctx, 1, false, 30*time.Second); !errors.Is(err, ErrCursorExpired) {
		t.Fatalf("410: %v; want ErrCursorExpired", err)
	}
	if _, err := c.Events(ctx, 2, false, 30*time.Second); err == nil {
		t.Fatal("out-of-order events accepted")
	}
	if _, err := c.Events(ctx, 3, false, 30*time.Second); err == nil {
		t.Fatal("answer without next accepted")
	}
}
