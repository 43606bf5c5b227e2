package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// clock is the service's injected clock: real time plus an offset the test
// moves forward, so expiry needs no sleeping.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func withClock(c *clock) servicetest.Option {
	return servicetest.WithConfig(func(k *keyserver.Config) { k.Now = c.Now })
}

// world is a running key service with an organization populated the way
// most tests need it: an owner, an aura owner, a member and two apps.
type world struct {
	t     *testing.T
	svc   *servicetest.Service
	clock *clock

	owner, aura, member       *client.Client
	ownerTok, auraTok, memTok string
	auraID, memberID, ownerID string

	appA, appB *client.CreatedApp
	verA, verB *client.Client // the apps' sidecars
}

func newWorld(t *testing.T, opts ...servicetest.Option) *world {
	t.Helper()
	w := &world{t: t, clock: &clock{}}
	w.svc = servicetest.Start(t, append([]servicetest.Option{withClock(w.clock)}, opts...)...)
	// Before the service stops (cleanups run last first): a connection the
	// transport dialled but never used would hold http.Server.Shutdown for
	// 5 s.
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	w.ownerTok = w.svc.OwnerToken
	w.owner = w.client(w.ownerTok)
	me, err := w.owner.Me(ctx(t))
	must(t, err)
	w.ownerID = me.ID
	aura := w.createUser(w.owner, "aura@example.com", client.RoleAuraOwner)
	w.aura, w.auraTok, w.auraID = w.client(aura.Token), aura.Token, aura.ID
	mem := w.createUser(w.owner, "member@example.com", client.RoleMember)
	w.member, w.memTok, w.memberID = w.client(mem.Token), mem.Token, mem.ID
	w.appA = w.createApp(w.owner, "app-a")
	w.appB = w.createApp(w.owner, "app-b")
	w.verA, w.verB = w.client(w.appA.VerifierToken), w.client(w.appB.VerifierToken)
	return w
}

func (w *world) client(token string) *client.Client {
	w.t.Helper()
	c, err := client.New(w.svc.URL, token, client.WithTimeout(20*time.Second))
	must(w.t, err)
	return c
}

func (w *world) createUser(by *client.Client, email string, role client.Role) *client.CreatedUser {
	w.t.Helper()
	u, err := by.CreateUser(ctx(w.t), client.CreateUserRequest{Email: email, Role: role})
	must(w.t, err)
	if u.Token == "" || u.ID == "" || u.Role != role {
		w.t.Fatalf("create user answered %+v", u)
	}
	return u
}

func (w *world) createApp(by *client.Client, name string) *client.CreatedApp {
	w.t.Helper()
	a, err := by.CreateApp(ctx(w.t), client.CreateAppRequest{Name: name, Kind: client.KindCloudFunction})
	must(w.t, err)
	if a.VerifierToken == "" || a.ID == "" {
		w.t.Fatalf("create app answered %+v", a)
	}
	return a
}

func (w *world) createKey(by *client.Client, appID, name string) *client.CreatedKey {
	w.t.Helper()
	k, err := by.CreateKey(ctx(w.t), appID, client.CreateKeyRequest{Name: name, ExpiresAt: w.clock.Now().Add(30 * 24 * time.Hour)})
	must(w.t, err)
	if k.PlainKey == "" || k.ID == "" {
		w.t.Fatalf("create key answered %+v", k)
	}
	return k
}

func (w *world) verify(v *client.Client, key string) *client.VerifyResult {
	w.t.Helper()
	res, err := v.Verify(ctx(w.t), key)
	must(w.t, err)
	return res
}

// do sends a raw request. body is nil (none), a string or []byte (sent as
// is) or anything else (sent as JSON). A JSON Content-Type is set for every
// body unless header overrides it.
func (w *world) do(method, path, token string, body any, header ...string) *response {
	w.t.Helper()
	return doHTTP(w.t, w.svc.URL, method, path, token, body, header...)
}

func doHTTP(t testing.TB, base, method, path, token string, body any, header ...string) *response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		must(t, err)
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx(t), method, base+path, rd)
	must(t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	must(t, err)
	return &response{t: t, req: method + " " + path, Status: res.StatusCode, Header: res.Header, Body: b}
}

type response struct {
	t      testing.TB
	req    string
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object.
func (r *response) JSON() map[string]any {
	r.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		r.t.Fatalf("%s: answer %d is not a JSON object: %v: %q", r.req, r.Status, err, r.Body)
	}
	return m
}

// Into decodes the body into v.
func (r *response) Into(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		r.t.Fatalf("%s: answer %d: %v: %q", r.req, r.Status, err, r.Body)
	}
}

func (r *response) WantStatus(status int) *response {
	r.t.Helper()
	if r.Status != status {
		r.t.Fatalf("%s: status %d, want %d; body %s", r.req, r.Status, status, r.Body)
	}
	return r
}

// WantError checks the answer is the API's documented error: the status,
// a JSON content type, and exactly {"error": {"code", "message"}} with the
// given code (any code when code is "") and a message.
func (r *response) WantError(status int, code string) {
	r.t.Helper()
	if r.Status != status {
		r.t.Fatalf("%s: status %d, want %d; body %s", r.req, r.Status, status, r.Body)
	}
	checkErrorBody(r.t, r.req, r.Header.Get("Content-Type"), r.Body, code)
}

func checkErrorBody(t testing.TB, what, contentType string, body []byte, code string) {
	t.Helper()
	if !strings.HasPrefix(contentType, "application/json") {
		t.Fatalf("%s: error answered with Content-Type %q: %q", what, contentType, body)
	}
	var e map[string]map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || len(e) != 1 || e["error"] == nil {
		t.Fatalf("%s: error body is not {\"error\": {...}}: %q", what, body)
	}
	c, _ := e["error"]["code"].(string)
	m, _ := e["error"]["message"].(string)
	if c == "" || strings.TrimSpace(m) == "" || len(e["error"]) != 2 {
		t.Fatalf("%s: error body needs exactly a code and a message: %q", what, body)
	}
	if code != "" && c != code {
		t.Fatalf("%s: error code %q, want %q (message %q)", what, c, code, m)
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it holds, failing the test after a generous
// bound. It waits for background work; it asserts nothing about speed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantAPIError checks err is the service's error with that status and code.
func wantAPIError(t testing.TB, err error, status int, code string) {
	t.Helper()
	if !client.IsStatus(err, status) || (code != "" && !client.IsCode(err, code)) {
		t.Fatalf("got error %v, want HTTP %d %s", err, status, code)
	}
}

func keyIDs(keys []client.Key) map[string]client.Key {
	m := make(map[string]client.Key, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	return m
}
