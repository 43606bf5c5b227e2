package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorded is what the fake service saw of one request.
type recorded struct {
	method, path, rawQuery, auth, contentType string
	body                                      map[string]any
}

// fakeService answers every request with status and body and records it.
type fakeService struct {
	mu     sync.Mutex
	last   recorded
	status int
	body   string
	header http.Header
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := recorded{method: r.Method, path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery,
		auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &rec.body); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
	}
	f.mu.Lock()
	f.last = rec
	status, body := f.status, f.body
	for k, v := range f.header {
		w.Header()[k] = v
	}
	f.mu.Unlock()
	if status == 0 {
		status = 200
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func newFake(t *testing.T, status int, body string) (*fakeService, *Client) {
	t.Helper()
	f := &fakeService{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "tok_secret", WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

const keyJSON = `{"id":"key_1","name":"ci","app_id":"app_1","app_name":"shop","prefix":"cak_abcdef","state":"orphaned",
"orphan_reason":"app_deleted","expires_at":"2027-02-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1","last_used_at":null}`

// Each endpoint goes to its method and path with its body, and its answer
// decodes into the typed result.
func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	exp := time.Date(2027, 2, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	cases := []struct {
		name       string
		status     int
		answer     string
		call       func(c *Client) (any, error)
		wantMethod string
		wantPath   string
		wantQuery  string
		wantBody   map[string]any
		check      func(t *testing.T, got any)
	}{
		{
			name: "create org", status: 201,
			answer: `{"id":"org_1","name":"acme","created_at":"2026-01-01T00:00:00Z","owner":{"id":"usr_1","email":"o@acme.test","role":"owner","token":"t1"}}`,
			call: func(c *Client) (any, error) {
				return c.CreateOrg(ctx, CreateOrgRequest{Name: "acme", OwnerEmail: "o@acme.test"})
			},
			wantMethod: "POST", wantPath: "/v1/orgs",
			wantBody: map[string]any{"name": "acme", "owner_email": "o@acme.test"},
			check: func(t *testing.T, got any) {
				o := got.(*CreatedOrg)
				if o.ID != "org_1" || o.Owner.Token != "t1" || o.Owner.Role != RoleOwner {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name: "me", answer: `{"id":"usr_1","email":"o@acme.test","role":"member","org_id":"org_1","org_name":"acme"}`,
			call:       func(c *Client) (any, error) { return c.Me(ctx) },
			wantMethod: "GET", wantPath: "/v1/me",
			check: func(t *testing.T, got any) {
				if m := got.(*Me); m.OrgName != "acme" || m.Role != RoleMember {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "create user", status: 201,
			answer: `{"id":"usr_2","email":"m@acme.test","role":"member","created_at":"2026-01-01T00:00:00Z","token":"t2"}`,
			call: func(c *Client) (any, error) {
				return c.CreateUser(ctx, CreateUserRequest{Email: "m@acme.test", Role: RoleMember})
			},
			wantMethod: "POST", wantPath: "/v1/users",
			wantBody: map[string]any{"email": "m@acme.test", "role": "member"},
			check: func(t *testing.T, got any) {
				if u := got.(*CreatedUser); u.ID != "usr_2" || u.Token != "t2" || u.CreatedAt.Year() != 2026 {
					t.Errorf("got %+v", u)
				}
			},
		},
		{
			name: "list users", answer: `{"users":[{"id":"usr_1","email":"a@b","role":"owner","created_at":"2026-01-01T00:00:00Z"}]}`,
			call:       func(c *Client) (any, error) { return c.ListUsers(ctx) },
			wantMethod: "GET", wantPath: "/v1/users",
			check: func(t *testing.T, got any) {
				if u := got.([]User); len(u) != 1 || u[0].Email != "a@b" {
					t.Errorf("got %+v", u)
				}
			},
		},
		{
			name: "delete user", status: 204,
			call:       func(c *Client) (any, error) { return nil, c.DeleteUser(ctx, "usr_2") },
			wantMethod: "DELETE", wantPath: "/v1/users/usr_2",
		},
		{
			name: "create app", status: 201,
			answer: `{"id":"app_1","name":"shop","kind":"dashboard_app","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1","verifier_token":"vt"}`,
			call: func(c *Client) (any, error) {
				return c.CreateApp(ctx, CreateAppRequest{Name: "shop", Kind: KindDashboardApp})
			},
			wantMethod: "POST", wantPath: "/v1/apps",
			wantBody: map[string]any{"name": "shop", "kind": "dashboard_app"},
			check: func(t *testing.T, got any) {
				if a := got.(*CreatedApp); a.VerifierToken != "vt" || a.Kind != KindDashboardApp {
					t.Errorf("got %+v", a)
				}
			},
		},
		{
			name: "list apps", answer: `{"apps":[{"id":"app_1","name":"shop","kind":"cloud_function","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1","active_keys":3,"orphaned_keys":1}]}`,
			call:       func(c *Client) (any, error) { return c.ListApps(ctx) },
			wantMethod: "GET", wantPath: "/v1/apps",
			check: func(t *testing.T, got any) {
				if a := got.([]App); len(a) != 1 || a[0].ActiveKeys != 3 || a[0].OrphanedKeys != 1 {
					t.Errorf("got %+v", a)
				}
			},
		},
		{
			name: "get app", answer: `{"id":"app_1","name":"shop","kind":"cloud_function","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1","active_keys":0,"orphaned_keys":0}`,
			call:       func(c *Client) (any, error) { return c.GetApp(ctx, "app_1") },
			wantMethod: "GET", wantPath: "/v1/apps/app_1",
			check: func(t *testing.T, got any) {
				if a := got.(*App); a.Name != "shop" {
					t.Errorf("got %+v", a)
				}
			},
		},
		{
			name: "delete app", status: 204,
			call:       func(c *Client) (any, error) { return nil, c.DeleteApp(ctx, "app_1") },
			wantMethod: "DELETE", wantPath: "/v1/apps/app_1",
		},
		{
			name: "create key", status: 201,
			answer: strings.TrimSuffix(keyJSON, "}") + `,"key":"cak_plain"}`,
			call: func(c *Client) (any, error) {
				return c.CreateKey(ctx, "app_1", CreateKeyRequest{Name: "ci", ExpiresAt: exp})
			},
			wantMethod: "POST", wantPath: "/v1/apps/app_1/keys",
			// The time goes out in UTC and save_as_secret is left out when unset.
			wantBody: map[string]any{"name": "ci", "expires_at": "2027-01-31T23:00:00Z"},
			check: func(t *testing.T, got any) {
				k := got.(*CreatedKey)
				if k.PlainKey != "cak_plain" || k.ID != "key_1" || k.OrphanReason != OrphanAppDeleted || k.LastUsedAt != nil {
					t.Errorf("got %+v", k)
				}
			},
		},
		{
			name: "create key into a secret", status: 201,
			answer: strings.TrimSuffix(keyJSON, "}") + `,"secret_name":"ci-key"}`,
			call: func(c *Client) (any, error) {
				return c.CreateKey(ctx, "app_1", CreateKeyRequest{Name: "ci", ExpiresAt: exp, SaveAsSecret: "ci-key"})
			},
			wantMethod: "POST", wantPath: "/v1/apps/app_1/keys",
			wantBody: map[string]any{"name": "ci", "expires_at": "2027-01-31T23:00:00Z", "save_as_secret": "ci-key"},
			check: func(t *testing.T, got any) {
				if k := got.(*CreatedKey); k.PlainKey != "" || k.SecretName != "ci-key" {
					t.Errorf("got %+v", k)
				}
			},
		},
		{
			name: "list app keys by state", answer: `{"keys":[` + keyJSON + `]}`,
			call:       func(c *Client) (any, error) { return c.ListAppKeys(ctx, "app_1", StateOrphaned) },
			wantMethod: "GET", wantPath: "/v1/apps/app_1/keys", wantQuery: "state=orphaned",
			check: func(t *testing.T, got any) {
				if k := got.([]Key); len(k) != 1 || k[0].AppName != "shop" {
					t.Errorf("got %+v", k)
				}
			},
		},
		{
			name: "list all keys", answer: `{"keys":[]}`,
			call:       func(c *Client) (any, error) { return c.ListKeys(ctx, StateAny) },
			wantMethod: "GET", wantPath: "/v1/keys",
		},
		{
			name: "list expired keys", answer: `{"keys":[]}`,
			call:       func(c *Client) (any, error) { return c.ListKeys(ctx, StateExpired) },
			wantMethod: "GET", wantPath: "/v1/keys", wantQuery: "state=expired",
		},
		{
			name: "list expiring keys", answer: `{"keys":[]}`,
			call:       func(c *Client) (any, error) { return c.ListExpiringKeys(ctx, "", 7*24*time.Hour) },
			wantMethod: "GET", wantPath: "/v1/keys", wantQuery: "expiring_within=7d",
		},
		{
			name: "list an app's expiring keys", answer: `{"keys":[]}`,
			call:       func(c *Client) (any, error) { return c.ListExpiringKeys(ctx, "app_1", 36*time.Hour) },
			wantMethod: "GET", wantPath: "/v1/apps/app_1/keys", wantQuery: "expiring_within=36h0m0s",
		},
		{
			name: "revoke key", status: 204,
			call:       func(c *Client) (any, error) { return nil, c.RevokeKey(ctx, "key_1") },
			wantMethod: "DELETE", wantPath: "/v1/keys/key_1",
		},
		{
			name: "create secret", status: 201, answer: `{"name":"db","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1"}`,
			call: func(c *Client) (any, error) {
				return c.CreateSecret(ctx, CreateSecretRequest{Name: "db", Value: "hunter2"})
			},
			wantMethod: "POST", wantPath: "/v1/secrets",
			wantBody: map[string]any{"name": "db", "value": "hunter2"},
		},
		{
			name: "list secrets", answer: `{"secrets":[{"name":"db","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1"}]}`,
			call:       func(c *Client) (any, error) { return c.ListSecrets(ctx) },
			wantMethod: "GET", wantPath: "/v1/secrets",
			check: func(t *testing.T, got any) {
				if s := got.([]Secret); len(s) != 1 || s[0].Name != "db" {
					t.Errorf("got %+v", s)
				}
			},
		},
		{
			// A name with a slash stays one path segment.
			name: "get secret", answer: `{"name":"a/b","value":"v","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1"}`,
			call:       func(c *Client) (any, error) { return c.GetSecret(ctx, "a/b") },
			wantMethod: "GET", wantPath: "/v1/secrets/a%2Fb",
			check: func(t *testing.T, got any) {
				if s := got.(*SecretValue); s.Value != "v" {
					t.Errorf("got %+v", s)
				}
			},
		},
		{
			name: "delete secret", status: 204,
			call:       func(c *Client) (any, error) { return nil, c.DeleteSecret(ctx, "db") },
			wantMethod: "DELETE", wantPath: "/v1/secrets/db",
		},
		{
			name: "audit", answer: `{"audit":[{"id":7,"at":"2026-01-01T00:00:00Z","actor":"usr_1","action":"secret.read","target":"db","detail":""}]}`,
			call:       func(c *Client) (any, error) { return c.ListAudit(ctx, 10) },
			wantMethod: "GET", wantPath: "/v1/audit", wantQuery: "limit=10",
			check: func(t *testing.T, got any) {
				if a := got.([]AuditRecord); len(a) != 1 || a[0].ID != 7 || a[0].Action != "secret.read" {
					t.Errorf("got %+v", a)
				}
			},
		},
		{
			name: "verify", answer: `{"valid":false,"code":"WRONG_APP","key_id":"key_1","key_name":"ci","app_id":"app_2","expires_at":"2027-02-01T00:00:00Z"}`,
			call:       func(c *Client) (any, error) { return c.Verify(ctx, "cak_x") },
			wantMethod: "POST", wantPath: "/v1/verify",
			wantBody: map[string]any{"key": "cak_x"},
			check: func(t *testing.T, got any) {
				if v := got.(*VerifyResult); v.Valid || v.Code != VerifyWrongApp || v.ExpiresAt == nil {
					t.Errorf("got %+v", v)
				}
			},
		},
		{
			name: "events head", answer: `{"events":[],"next":42}`,
			call:       func(c *Client) (any, error) { return c.EventsHead(ctx) },
			wantMethod: "GET", wantPath: "/v1/events",
			check: func(t *testing.T, got any) {
				if got.(int64) != 42 {
					t.Errorf("got %v", got)
				}
			},
		},
		{
			name: "events", answer: `{"events":[{"seq":43,"type":"key.revoked","key_id":"key_1","app_id":"app_1","at":"2026-01-01T00:00:00Z"}],"next":43}`,
			call:       func(c *Client) (any, error) { return c.Events(ctx, 42, 30*time.Second) },
			wantMethod: "GET", wantPath: "/v1/events", wantQuery: "after=42&wait=30s",
			check: func(t *testing.T, got any) {
				p := got.(*EventPage)
				if p.Next != 43 || len(p.Events) != 1 || p.Events[0].Type != EventKeyRevoked {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name: "healthz", answer: "ok",
			call:       func(c *Client) (any, error) { return nil, c.Healthz(ctx) },
			wantMethod: "GET", wantPath: "/healthz",
		},
		{
			name: "readyz", answer: "ok",
			call:       func(c *Client) (any, error) { return nil, c.Readyz(ctx) },
			wantMethod: "GET", wantPath: "/readyz",
		},
		{
			name: "metrics", answer: "appkeys_requests_total 1\n",
			call:       func(c *Client) (any, error) { return c.Metrics(ctx) },
			wantMethod: "GET", wantPath: "/metrics",
			check: func(t *testing.T, got any) {
				if got.(string) != "appkeys_requests_total 1\n" {
					t.Errorf("got %q", got)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newFake(t, tc.status, tc.answer)
			got, err := tc.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			r := f.last
			if r.method != tc.wantMethod || r.path != tc.wantPath || r.rawQuery != tc.wantQuery {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.method, r.path, r.rawQuery, tc.wantMethod, tc.wantPath, tc.wantQuery)
			}
			if r.auth != "Bearer tok_secret" {
				t.Errorf("Authorization %q", r.auth)
			}
			if tc.wantBody != nil {
				if r.contentType != "application/json" {
					t.Errorf("Content-Type %q", r.contentType)
				}
				gotB, _ := json.Marshal(r.body)
				wantB, _ := json.Marshal(tc.wantBody)
				if string(gotB) != string(wantB) {
					t.Errorf("body %s, want %s", gotB, wantB)
				}
			} else if r.body != nil {
				t.Errorf("unexpected body %v", r.body)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestAPIError(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		want       APIError
		wantText   string
	}{
		{
			name: "api shape", status: 409, body: `{"error":{"code":"conflict","message":"an app named shop exists"}}`,
			want:     APIError{Status: 409, Code: CodeConflict, Message: "an app named shop exists"},
			wantText: "an app named shop exists (conflict, HTTP 409)",
		},
		{
			name: "rate limited", status: 429, retryAfter: "7", body: `{"error":{"code":"rate_limited","message":"slow down"}}`,
			want:     APIError{Status: 429, Code: CodeRateLimited, Message: "slow down", RetryAfter: 7 * time.Second},
			wantText: "slow down (rate_limited, HTTP 429)",
		},
		{
			name: "not our API", status: 502, body: "<html>bad gateway</html>",
			want:     APIError{Status: 502, Message: "unexpected answer from the key service: bad gateway"},
			wantText: "unexpected answer from the key service: bad gateway (HTTP 502)",
		},
		{
			// A hostile message cannot break the one-line error or send
			// escape sequences to a terminal.
			name: "multi-line message", status: 400, body: `{"error":{"code":"bad_request","message":"line one\nline two\u001b[31m"}}`,
			want:     APIError{Status: 400, Code: CodeBadRequest, Message: "line one\nline two\x1b[31m"},
			wantText: "line one line two [31m (bad_request, HTTP 400)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newFake(t, tc.status, tc.body)
			if tc.retryAfter != "" {
				f.header = http.Header{"Retry-After": {tc.retryAfter}}
			}
			_, err := c.ListApps(context.Background())
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if *ae != tc.want {
				t.Errorf("got %+v, want %+v", *ae, tc.want)
			}
			if err.Error() != tc.wantText {
				t.Errorf("text %q, want %q", err.Error(), tc.wantText)
			}
			if !IsStatus(err, tc.status) || (tc.want.Code != "" && !IsCode(err, tc.want.Code)) {
				t.Error("IsStatus/IsCode disagree with the error")
			}
		})
	}
}

// A redirect is reported, not followed: following would hand the bearer
// token to wherever the Location points.
func TestRedirectNotFollowed(t *testing.T) {
	var leaked sync.Map
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store("auth", r.Header.Get("Authorization"))
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := New(srv.URL, "tok_secret")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListApps(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("error %v, want a redirect error", err)
	}
	if strings.Contains(err.Error(), "tok_secret") {
		t.Errorf("error names the token: %v", err)
	}
	if _, ok := leaked.Load("auth"); ok {
		t.Error("the redirect was followed")
	}
}

func TestResponseSizeLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"apps":[`+strings.Repeat(" ", 2000)+`]}`)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "t", WithMaxResponseBytes(1000))
	if _, err := c.ListApps(context.Background()); !errors.Is(err, errResponseTooLarge) {
		t.Fatalf("error %v, want errResponseTooLarge", err)
	}
	c, _ = New(srv.URL, "t", WithMaxResponseBytes(4000))
	if _, err := c.ListApps(context.Background()); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, _ := New(srv.URL, "t", WithTimeout(50*time.Millisecond))
	if _, err := c.ListApps(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a deadline", err)
	}
}

// A long poll gets its wait on top of the timeout, so the timeout does not
// cut a healthy long poll short.
func TestEventsWaitExtendsTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, `{"events":[],"next":1}`)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "t", WithTimeout(100*time.Millisecond))
	if _, err := c.Events(context.Background(), 1, 200*time.Millisecond); err != nil {
		t.Fatalf("long poll: %v", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8700", "ftp://h", "http://", "http://u:pw@h", "http://h/?x=1", "http://h/#f", "http://h:bad"} {
		_, err := New(u, "t")
		if err == nil {
			t.Errorf("New(%q) accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("New(%q) error shows the password: %v", u, err)
		}
	}
}

// A base URL with a path prefix (a proxy in front) keeps it.
func TestBaseURLPathPrefix(t *testing.T) {
	f := &fakeService{body: `{"apps":[]}`}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(srv.URL+"/keysvc/", "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListApps(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.last.path != "/keysvc/v1/apps" {
		t.Errorf("path %q", f.last.path)
	}
}

// An empty id is refused before it turns a call on one object into a call
// on the collection.
func TestEmptyIDRefused(t *testing.T) {
	f, c := newFake(t, 204, "")
	if err := c.DeleteApp(context.Background(), ""); err == nil {
		t.Fatal("DeleteApp(\"\") accepted")
	}
	if f.last.method != "" {
		t.Errorf("a request was sent: %+v", f.last)
	}
}

func TestOrphanReasonJSON(t *testing.T) {
	var k Key
	if err := json.Unmarshal([]byte(`{"orphan_reason":null}`), &k); err != nil || k.OrphanReason != "" {
		t.Fatalf("null: %v %q", err, k.OrphanReason)
	}
	b, _ := json.Marshal(k)
	if !strings.Contains(string(b), `"orphan_reason":null`) {
		t.Errorf("marshal of no reason: %s", b)
	}
	k.OrphanReason = OrphanCreatorDeleted
	b, _ = json.Marshal(k)
	var back Key
	if err := json.Unmarshal(b, &back); err != nil || back.OrphanReason != OrphanCreatorDeleted {
		t.Errorf("round trip: %v %q", err, back.OrphanReason)
	}
}
