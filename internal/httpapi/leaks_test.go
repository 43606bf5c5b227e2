package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/leaktest"
	"github.com/appkeys/appkeys/internal/servicetest"
)

const leakPath = "/v1/leaks/github"

// leakWorld is a world whose leak reports are signed by a key pair made
// here, published by a key server on 127.0.0.1 in GitHub's document shape.
type leakWorld struct {
	*world
	github *leaktest.Signer
	keys   *leaktest.KeyServer
	logs   *servicetest.LogBuffer
}

func newLeakWorld(t *testing.T, cfg func(*keyserver.Config)) *leakWorld {
	t.Helper()
	gh := leaktest.NewSigner()
	ks := leaktest.NewKeyServer(gh)
	t.Cleanup(ks.Close)
	logs := &servicetest.LogBuffer{}
	w := newWorld(t, servicetest.WithLogger(newTextLogger(logs)),
		servicetest.WithConfig(func(c *keyserver.Config) {
			c.LeakKeysURL = ks.URL
			if cfg != nil {
				cfg(c)
			}
		}))
	return &leakWorld{world: w, github: gh, keys: ks, logs: logs}
}

// newTextLogger logs everything, debug included, to logs.
func newTextLogger(logs *servicetest.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// report posts body signed by s (unsigned when nil).
func (w *leakWorld) report(s *leaktest.Signer, body []byte) (int, []byte) {
	w.t.Helper()
	status, b, err := leaktest.Post(ctx(w.t), http.DefaultClient, w.svc.URL+leakPath, s, body)
	must(w.t, err)
	return status, b
}

func (w *leakWorld) metrics() string {
	w.t.Helper()
	return string(w.do("GET", "/metrics", "", nil).WantStatus(http.StatusOK).Body)
}

func (w *leakWorld) metric(name string, labels map[string]string) float64 {
	w.t.Helper()
	v, _ := metricValue(parseMetrics(w.t, w.metrics()), name, labels)
	return v
}

// otherOrg makes a second organization with an app and a live key.
func (w *leakWorld) otherOrg() (owner *client.Client, app *client.CreatedApp, key *client.CreatedKey) {
	w.t.Helper()
	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(w.t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "boss@other.example"})
	must(w.t, err)
	owner = w.client(org2.Owner.Token)
	app = w.createApp(owner, "theirs")
	return owner, app, w.createKey(owner, app.ID, "their-key")
}

// TestLeakReportBatch: one signed report names live keys of two apps, a
// key revoked already, a key of another organization (ours too: revoked),
// a key that never existed, a bad checksum, a cut-short key and another
// provider's token. Each match is answered in GitHub's feedback format;
// exactly the live keys are revoked, with the reason leaked, their
// sidecars hear it on the feed, the audit says where each was found, and
// no token is written anywhere.
func TestLeakReportBatch(t *testing.T) {
	w := newLeakWorld(t, nil)
	live := w.createKey(w.owner, w.appA.ID, "live")
	liveB := w.createKey(w.member, w.appB.ID, "live-b")
	gone := w.createKey(w.owner, w.appA.ID, "gone")
	must(t, w.owner.RevokeKey(ctx(t), gone.ID))
	keep := w.createKey(w.owner, w.appA.ID, "keep") // not reported
	_, theirApp, theirs := w.otherOrg()
	theirVerifier := w.client(theirApp.VerifierToken)
	head, err := w.verA.EventsHead(ctx(t))
	must(t, err)
	unknown, err := apikey.Generate()
	must(t, err)
	badSum := otherLast(live.PlainKey)
	tokens := []string{live.PlainKey, liveB.PlainKey, gone.PlainKey, theirs.PlainKey, unknown, badSum, live.PlainKey[:30], otherProviderToken, live.PlainKey}
	want := []string{"true_positive", "true_positive", "true_positive", "true_positive", "false_positive", "false_positive", "false_positive", "false_positive", "true_positive"}

	body := leaktest.Body(tokens...)
	status, answer := w.report(w.github, body)
	if status != http.StatusOK {
		t.Fatalf("signed report: %d %s", status, answer)
	}
	var fb []leaktest.Feedback
	if err := json.Unmarshal(answer, &fb); err != nil || len(fb) != len(tokens) {
		t.Fatalf("answer %s: %v; want %d entries", answer, err, len(tokens))
	}
	for i, f := range fb {
		if f.TokenHash != leaktest.TokenHash(tokens[i]) || f.TokenType != "appkeys_api_key" || f.Label != want[i] {
			t.Errorf("match %d: %+v; want %s of hash %s", i, f, want[i], leaktest.TokenHash(tokens[i]))
		}
	}
	for _, tok := range tokens {
		if bytes.Contains(answer, []byte(tok)) || bytes.Contains(answer, []byte("token_raw")) {
			t.Fatalf("the answer carries a token: %s", answer)
		}
	}

	for _, c := range []struct {
		v    *client.Client
		key  string
		code client.VerifyCode
	}{{w.verA, live.PlainKey, client.VerifyRevoked}, {w.verB, liveB.PlainKey, client.VerifyRevoked},
		{theirVerifier, theirs.PlainKey, client.VerifyRevoked}, {w.verA, keep.PlainKey, client.VerifyValid}} {
		if got := w.verify(c.v, c.key); got.Code != c.code {
			t.Errorf("verify %s… = %s; want %s", c.key[:10], got.Code, c.code)
		}
	}
	found, err := w.owner.LookupKey(ctx(t), live.PlainKey)
	must(t, err)
	if found.State != client.StateRevoked || found.RevokeReason != client.RevokeLeaked || found.RevokedAt == nil || found.LeakedAt == nil {
		t.Fatalf("lookup of the leaked key: %+v; want revoked (leaked)", found)
	}
	found, err = w.owner.LookupKey(ctx(t), gone.PlainKey)
	must(t, err)
	if found.RevokeReason != "" || found.LeakedAt != nil {
		t.Fatalf("a key revoked by hand before the report changed: %+v", found)
	}
	page, err := w.verA.Events(ctx(t), head, 0)
	must(t, err)
	if len(page.Events) != 1 || page.Events[0].Type != client.EventKeyRevoked || page.Events[0].KeyID != live.ID {
		t.Fatalf("app A's feed after the report: %+v; want one key.revoked of %s", page.Events, live.ID)
	}

	audit, err := w.owner.ListAudit(ctx(t), 20)
	must(t, err)
	var detail string
	for _, a := range audit {
		if a.Action == "key.revoke" && a.Target == live.ID {
			detail = a.Detail
			if a.Actor != "github-secret-scanning" {
				t.Errorf("leak revoke actor %q", a.Actor)
			}
		}
	}
	for _, part := range []string{"https://github.com/octocat/hello/blob/abc123/config/0.env", "source commit", "type appkeys_api_key"} {
		if !strings.Contains(detail, part) {
			t.Errorf("audit detail %q lacks %q", detail, part)
		}
	}
	if got := w.metric("appkeys_leaked_keys_revoked_total", nil); got != 3 {
		t.Errorf("appkeys_leaked_keys_revoked_total = %v; want 3", got)
	}
	if got := w.metric("appkeys_leak_reports_total", map[string]string{"result": "accepted"}); got != 1 {
		t.Errorf("accepted reports = %v; want 1", got)
	}

	// The same report again (GitHub retries) changes nothing more.
	status, again := w.report(w.github, body)
	if status != http.StatusOK || !bytes.Equal(again, answer) {
		t.Fatalf("the report again: %d %s; want the same answer", status, again)
	}
	if got := w.metric("appkeys_leaked_keys_revoked_total", nil); got != 3 {
		t.Errorf("after a repeat, revoked = %v; want still 3", got)
	}
	wantNoTokens(t, w, tokens)
}

// wantNoTokens checks that no token reached the logs or the audit.
func wantNoTokens(t *testing.T, w *leakWorld, tokens []string) {
	t.Helper()
	audit, err := w.owner.ListAudit(ctx(t), 1000)
	must(t, err)
	everything := w.logs.String()
	for _, a := range audit {
		everything += a.Detail + a.Target
	}
	for _, tok := range tokens {
		if len(tok) > 12 && strings.Contains(everything, tok) {
			t.Fatalf("a reported token (%s…) reached the logs or the audit", tok[:8])
		}
	}
}

// TestLeakReportForgeries: a report that GitHub did not sign does nothing,
// however close it comes: no signature, half of one, a signature by a key
// pair GitHub never published under GitHub's identifier, GitHub's
// signature of another body, GitHub's signature over the same matches
// encoded otherwise, or a signature that is not base64. Each is 401 and
// the key still works.
func TestLeakReportForgeries(t *testing.T) {
	w := newLeakWorld(t, nil)
	k := w.createKey(w.owner, w.appA.ID, "target")
	body := leaktest.Body(k.PlainKey)
	var m []map[string]any
	must(t, json.Unmarshal(body, &m))
	reencoded, _ := json.MarshalIndent(m, "", "  ")
	impostor := leaktest.NewSigner()
	sign := func(s *leaktest.Signer, b []byte) string { return s.Sign(b) }
	cases := []struct {
		name    string
		body    []byte
		headers []string
	}{
		{"no signature", body, nil},
		{"identifier only", body, []string{"Github-Public-Key-Identifier", w.github.ID}},
		{"signature only", body, []string{"Github-Public-Key-Signature", sign(w.github, body)}},
		{"another key pair under GitHub's identifier", body, []string{"Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", sign(impostor, body)}},
		{"GitHub's signature of another body", body, []string{"Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", sign(w.github, leaktest.Body("cak_other"))}},
		{"the same matches re-encoded", reencoded, []string{"Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", sign(w.github, body)}},
		{"a newline added", append(append([]byte{}, body...), '\n'), []string{"Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", sign(w.github, body)}},
		{"not base64", body, []string{"Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", "%%%not-base64%%%"}},
		{"empty signature", body, []string{"Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", " "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.do("POST", leakPath, "", c.body, c.headers...).WantError(http.StatusUnauthorized, "unauthorized")
			if got := w.verify(w.verA, k.PlainKey); got.Code != client.VerifyValid {
				t.Fatalf("after a forged report the key answers %s", got.Code)
			}
		})
	}
	if got := w.metric("appkeys_leaked_keys_revoked_total", nil); got != 0 {
		t.Fatalf("forged reports revoked %v keys", got)
	}
	if got := w.metric("appkeys_leak_reports_total", map[string]string{"result": "unauthorized"}); got != float64(len(cases)) {
		t.Fatalf("unauthorized reports = %v; want %d", got, len(cases))
	}
	wantNoTokens(t, w, []string{k.PlainKey})
	// The genuine report still acts: the refusals above were not luck.
	if status, b := w.report(w.github, body); status != http.StatusOK || w.verify(w.verA, k.PlainKey).Code != client.VerifyRevoked {
		t.Fatalf("the genuine report: %d %s", status, b)
	}
}

// TestLeakKeysRefresh: an unknown key identifier makes the service read
// the public keys again, once, and only when it has not read them in the
// last minute, with a conditional request; a flood of unknown identifiers
// costs the key server one request a minute, not one each; a key GitHub
// rotates in is accepted once read.
func TestLeakKeysRefresh(t *testing.T) {
	w := newLeakWorld(t, nil)
	k := w.createKey(w.owner, w.appA.ID, "k")
	if w.keys.Requests() != 0 {
		t.Fatalf("the keys were read before any report: %d requests", w.keys.Requests())
	}
	if status, b := w.report(w.github, leaktest.Body("cak_nothing")); status != http.StatusOK {
		t.Fatalf("first report: %d %s", status, b)
	}
	if got := w.keys.Requests(); got != 1 {
		t.Fatalf("first report: %d key server requests; want 1", got)
	}
	stranger := leaktest.NewSigner() // an identifier the key server does not list
	// Within the minute: no read at all.
	if status, _ := w.report(stranger, leaktest.Body(k.PlainKey)); status != http.StatusUnauthorized {
		t.Fatalf("unknown identifier: %d; want 401", status)
	}
	if got := w.keys.Requests(); got != 1 {
		t.Fatalf("unknown identifier within the minute: %d requests; want still 1", got)
	}
	// A minute on, a flood of unknown identifiers at once: one read.
	w.clock.Advance(leakRefresh + time.Second)
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, err := leaktest.Post(ctx(t), http.DefaultClient, w.svc.URL+leakPath, stranger, leaktest.Body(k.PlainKey))
			if err != nil {
				t.Error(err)
			}
			statuses <- status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusUnauthorized {
			t.Fatalf("flood of unknown identifiers: a %d; want every one 401", s)
		}
	}
	if got, notMod := w.keys.Requests(), w.keys.NotModified(); got != 2 || notMod != 1 {
		t.Fatalf("flood: %d key server requests (%d answered 304); want 2 (the second conditional, 304)", got, notMod)
	}
	if w.verify(w.verA, k.PlainKey).Code != client.VerifyValid {
		t.Fatal("a report under an unknown identifier revoked the key")
	}
	// GitHub rotates: the new key is read at the first report it signs.
	w.keys.Publish(stranger, w.github)
	w.clock.Advance(leakRefresh + time.Second)
	if status, b := w.report(stranger, leaktest.Body(k.PlainKey)); status != http.StatusOK {
		t.Fatalf("report signed by the rotated-in key: %d %s", status, b)
	}
	if got := w.keys.Requests(); got != 3 {
		t.Fatalf("after the rotation: %d requests; want 3", got)
	}
	if w.verify(w.verA, k.PlainKey).Code != client.VerifyRevoked {
		t.Fatal("the rotated-in key's report did not revoke the key")
	}
}

// leakRefresh is keyservice.LeakKeysRefreshEvery, as a user reads it in
// the docs: at most one read of the keys a minute.
const leakRefresh = time.Minute

// TestLeakNotify: with --leak-action notify, a reported key keeps working,
// marked leaked, and the leaked=true lists find it.
func TestLeakNotify(t *testing.T) {
	w := newLeakWorld(t, func(c *keyserver.Config) { c.LeakAction = "notify" })
	k := w.createKey(w.owner, w.appA.ID, "reported")
	clean := w.createKey(w.owner, w.appA.ID, "clean")
	if status, b := w.report(w.github, leaktest.Body(k.PlainKey)); status != http.StatusOK || !strings.Contains(string(b), "true_positive") {
		t.Fatalf("report: %d %s", status, b)
	}
	if got := w.verify(w.verA, k.PlainKey); got.Code != client.VerifyValid {
		t.Fatalf("notify: the key answers %s; want VALID", got.Code)
	}
	yes, no := true, false
	for _, c := range []struct {
		q    client.KeyQuery
		want string
	}{{client.KeyQuery{Leaked: &yes}, k.ID}, {client.KeyQuery{AppID: w.appA.ID, Leaked: &yes}, k.ID}, {client.KeyQuery{AppID: w.appA.ID, Leaked: &no}, clean.ID}} {
		keys, err := w.member.ListKeysWhere(ctx(t), c.q)
		must(t, err)
		if len(keys) != 1 || keys[0].ID != c.want || (keys[0].ID == k.ID) != (keys[0].LeakedAt != nil) {
			t.Errorf("ListKeysWhere(%+v) = %+v; want only %s", c.q, keys, c.want)
		}
	}
	w.do("GET", "/v1/keys?leaked=maybe", w.ownerTok, nil).WantError(http.StatusBadRequest, "bad_request")
	audit, err := w.owner.ListAudit(ctx(t), 5)
	must(t, err)
	if audit[0].Action != "key.leaked" || audit[0].Target != k.ID {
		t.Fatalf("newest audit record %+v; want key.leaked of %s", audit[0], k.ID)
	}
	if got := w.metric("appkeys_leaked_keys_revoked_total", nil); got != 0 {
		t.Fatalf("notify revoked %v keys", got)
	}
}

// TestLeakReportLimits: reports from one address past their budget are
// 429 before their body is read; a body over the report cap is 413; a
// thousand matches with long URLs, past the other routes' cap, are fine.
func TestLeakReportLimits(t *testing.T) {
	w := newLeakWorld(t, func(c *keyserver.Config) { c.LeakReportBurst, c.LeakReportRate = 30, 0.001 })
	var tokens []string
	for range 1000 {
		tok, err := apikey.Generate()
		must(t, err)
		tokens = append(tokens, tok)
	}
	big := leaktest.Body(tokens...)
	big = bytes.ReplaceAll(big, []byte("https://github.com/"), []byte("https://github.com/"+strings.Repeat("long-path/", 10)))
	if len(big) <= 160<<10 {
		t.Fatalf("the thousand matches take only %d bytes; make them bigger", len(big))
	}
	status, b := w.report(w.github, big)
	if status != http.StatusOK || strings.Count(string(b), "false_positive") != 1000 {
		t.Fatalf("a thousand matches (%d bytes): %d %.200s", len(big), status, b)
	}
	huge := bytes.Repeat([]byte(" "), 2<<20+1)
	w.do("POST", leakPath, "", huge).WantError(http.StatusRequestEntityTooLarge, "payload_too_large")
	w.do("POST", leakPath, "", "[]", "Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", w.github.Sign([]byte("{"))).WantError(http.StatusUnauthorized, "")
	w.do("POST", leakPath, "", "{", "Github-Public-Key-Identifier", w.github.ID, "Github-Public-Key-Signature", w.github.Sign([]byte("{"))).WantError(http.StatusBadRequest, "bad_request")
	var limited *response
	for i := range 40 {
		r := w.do("POST", leakPath, "", "[]")
		if r.Status == http.StatusTooManyRequests {
			limited = r
			break
		}
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	if limited == nil || limited.Header.Get("Retry-After") == "" {
		t.Fatal("40 reports from one address were never rate limited")
	}
	limited.WantError(http.StatusTooManyRequests, "rate_limited")
	if got := w.metric("appkeys_leak_reports_total", map[string]string{"result": "rate_limited"}); got < 1 {
		t.Fatalf("rate_limited reports = %v", got)
	}
}

// TestGitHubDocumentationSample: the sample request of GitHub's "Secret
// scanning partner program" page (payload, key identifier and signature),
// verified against the public key GitHub publishes for that identifier,
// both kept in testdata/github, read from --leak-keys-file. A byte changed
// breaks it.
func TestGitHubDocumentationSample(t *testing.T) {
	payload, err := os.ReadFile("testdata/github/sample_payload.json")
	must(t, err)
	if len(payload) != 104 {
		t.Fatalf("the sample payload is %d bytes; GitHub signed 104 (no trailing newline)", len(payload))
	}
	headers, err := os.ReadFile("testdata/github/sample_headers.txt")
	must(t, err)
	var hdr []string
	for _, line := range strings.Split(strings.TrimSpace(string(headers)), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		hdr = append(hdr, name, value)
	}
	w := newWorld(t, servicetest.WithConfig(func(c *keyserver.Config) { c.LeakKeysFile = "testdata/github/public_keys.json" }))
	r := w.do("POST", leakPath, "", payload, hdr...).WantStatus(http.StatusOK)
	var fb []leaktest.Feedback
	r.Into(&fb)
	want := leaktest.Feedback{TokenHash: leaktest.TokenHash("some_token"), TokenType: "some_type", Label: "false_positive"}
	if len(fb) != 1 || fb[0] != want {
		t.Fatalf("answer %s; want [%+v]", r.Body, want)
	}
	tampered := bytes.Replace(payload, []byte("commit"), []byte("Commit"), 1)
	w.do("POST", leakPath, "", tampered, hdr...).WantError(http.StatusUnauthorized, "unauthorized")
}

// otherLast changes a key's last character (of its checksum) to one it is
// not.
func otherLast(key string) string {
	last := "A"
	if strings.HasSuffix(key, last) {
		last = "B"
	}
	return key[:len(key)-1] + last
}

// TestLeakKeysUnreachable: when the public keys cannot be read (GitHub
// down, a wrong URL), a report is 503 with Retry-After, which GitHub
// retries, rather than a 401 that says its signature is bad, and still
// at most one read a minute is tried; once the keys are back the report
// goes through.
func TestLeakKeysUnreachable(t *testing.T) {
	gh := leaktest.NewSigner()
	down := true
	var mu sync.Mutex
	requests := 0
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests++
		if down {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write(leaktest.Document(gh))
	}))
	t.Cleanup(keys.Close)
	w := newWorld(t, servicetest.WithConfig(func(c *keyserver.Config) { c.LeakKeysURL = keys.URL }))
	k := w.createKey(w.owner, w.appA.ID, "k")
	body := leaktest.Body(k.PlainKey)
	for range 3 {
		r := w.do("POST", leakPath, "", body, "Github-Public-Key-Identifier", gh.ID, "Github-Public-Key-Signature", gh.Sign(body))
		r.WantError(http.StatusServiceUnavailable, "unavailable")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	}
	mu.Lock()
	if requests != 1 {
		t.Fatalf("3 reports while the keys are unreadable made %d requests; want 1", requests)
	}
	down = false
	mu.Unlock()
	w.clock.Advance(leakRefresh + time.Second)
	status, b, err := leaktest.Post(ctx(t), http.DefaultClient, w.svc.URL+leakPath, gh, body)
	if err != nil || status != http.StatusOK || w.verify(w.verA, k.PlainKey).Code != client.VerifyRevoked {
		t.Fatalf("once the keys are back: %d %v %s", status, err, b)
	}
}

// otherProviderToken has the shape of a GitHub token: another provider's
// secret, which a leak report or a lookup must answer and ignore. It is
// split so that secret scanners do not flag our own test data.
const otherProviderToken = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"
