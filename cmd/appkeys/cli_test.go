package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// cliRun is what one in-process run of the command line produced.
type cliRun struct {
	stdout, stderr string
	err            error
}

// errLine is the line main prints for an error.
func (r cliRun) errLine() string {
	if r.err == nil {
		return ""
	}
	return "appkeys: " + r.err.Error()
}

// runCLI runs the appkeys command line in-process with stdin as its input.
func runCLI(t testing.TB, stdin io.Reader, args ...string) cliRun {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetIn(stdin)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return cliRun{stdout: out.String(), stderr: errb.String(), err: err}
}

// fakeTerminal is an input that says it is a terminal.
type fakeTerminal struct{ io.Reader }

func (fakeTerminal) IsTerminal() bool { return true }

// fakeAPI answers "METHOD /path" with canned responses and records what it
// was sent. Unit tests of the command line use it; cli_e2e_test.go uses the
// real key service.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	answers map[string]fakeAnswer
	calls   []fakeCall
}

type fakeAnswer struct {
	status int
	body   string
}

type fakeCall struct {
	route, query, auth string
	body               map[string]any
}

func newFakeAPI(t *testing.T, answers map[string]fakeAnswer) (*fakeAPI, string) {
	f := &fakeAPI{t: t, answers: answers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := fakeCall{route: r.Method + " " + r.URL.EscapedPath(), query: r.URL.RawQuery, auth: r.Header.Get("Authorization")}
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		_ = json.Unmarshal(b, &c.body)
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	a, ok := f.answers[c.route]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(404)
		io.WriteString(w, `{"error":{"code":"not_found","message":"no such route in the fake"}}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (f *fakeAPI) routes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r []string
	for _, c := range f.calls {
		r = append(r, c.route)
	}
	return r
}

func (f *fakeAPI) last() fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return fakeCall{}
	}
	return f.calls[len(f.calls)-1]
}

func TestParseExpires(t *testing.T) {
	now := time.Date(2026, 3, 10, 15, 4, 5, 600, time.UTC)
	cases := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "30d", want: time.Date(2026, 4, 9, 15, 4, 5, 0, time.UTC)},
		{in: "1d", want: time.Date(2026, 3, 11, 15, 4, 5, 0, time.UTC)},
		{in: "12h", want: time.Date(2026, 3, 11, 3, 4, 5, 0, time.UTC)},
		{in: " 7d ", want: time.Date(2026, 3, 17, 15, 4, 5, 0, time.UTC)},
		// A date means the key lives through that whole day, UTC.
		{in: "2027-01-31", want: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2026-12-31", want: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		// Today is still in the future until midnight.
		{in: "2026-03-10", want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{in: "2027-01-31T12:00:00Z", want: time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)},
		{in: "2027-01-31T12:00:00+02:00", want: time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC)},
		{in: "", wantErr: "--expires is required"},
		{in: "0d", wantErr: "at least an hour"},
		{in: "30", wantErr: "invalid --expires"},
		{in: "d", wantErr: "invalid --expires"},
		{in: "-3d", wantErr: "invalid --expires"},
		{in: "1.5d", wantErr: "invalid --expires"},
		{in: "30m", wantErr: "invalid --expires"},
		{in: "99999999999999999999d", wantErr: "invalid --expires"},
		{in: "1000000d", wantErr: "invalid --expires"},
		{in: "2027-02-30", wantErr: "invalid --expires"},
		{in: "31/01/2027", wantErr: "invalid --expires"},
		{in: "2026-03-09", wantErr: "not in the future"},
		{in: "2020-01-01T00:00:00Z", wantErr: "not in the future"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseExpires(tc.in, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseExpires(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseExpires(%q): %v", tc.in, err)
			}
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Errorf("parseExpires(%q) = %v, want %v in UTC", tc.in, got, tc.want)
			}
		})
	}
}

func TestKeysTable(t *testing.T) {
	used := time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)
	keys := []client.Key{
		{ID: "key_1", Name: "ci", AppID: "app_1", AppName: "shop", Prefix: "cak_AbCdEf", State: client.StateActive,
			ExpiresAt: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), CreatedBy: "usr_1", CreatedByEmail: "a@b.test", LastUsedAt: &used,
			RateLimit: &client.RateLimit{Requests: 5, Per: "1s"}, AllowedCIDRs: []string{"10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"}},
		// A name with a tab and a newline cannot break the columns.
		{ID: "key_2", Name: "bad\tname\n", AppID: "app_2", Prefix: "cak_000000", State: client.StateOrphaned,
			OrphanReason: client.OrphanAppDeleted, ExpiresAt: time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("X", 3600)), CreatedBy: "usr_2"},
	}
	var b bytes.Buffer
	if err := keysTable(&b, keys); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID     NAME      APP           PREFIX      STATE                   EXPIRES               LAST USED             CREATED BY  LIMITS\n" +
		"key_1  ci        shop (app_1)  cak_AbCdEf  active                  2027-02-01 00:00 UTC  2026-03-01 08:30 UTC  a@b.test    5/1s from 10.0.0.0/8 192.168.1.7/32 +1 more\n" +
		"key_2  bad name  app_2         cak_000000  orphaned (app_deleted)  2026-12-31 22:59 UTC  never                 usr_2       -\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestAppsTable(t *testing.T) {
	var b bytes.Buffer
	err := appsTable(&b, []client.App{{ID: "app_1", Name: "shop", Kind: client.KindDashboardApp, ActiveKeys: 2, OrphanedKeys: 10,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), CreatedBy: "usr_1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID     NAME  KIND           ACTIVE  ORPHANED  CREATED               CREATED BY\n" +
		"app_1  shop  dashboard_app  2       10        2026-01-02 03:04 UTC  usr_1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

const (
	testToken    = "usr_tok_do_not_print"
	testPlainKey = "cak_PLAINKEYshownonce0000000000000000000000000abcdef"
	createdKey   = `{"id":"key_1","name":"ci","app_id":"app_1","app_name":"shop","prefix":"cak_PLAINK","state":"active",
		"orphan_reason":null,"expires_at":"2027-02-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1","last_used_at":null`
)

func TestKeysCreatePrintsKeyOnce(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"POST /v1/apps/app_1/keys": {201, createdKey + `,"key":"` + testPlainKey + `"}`},
	})
	r := runCLI(t, nil, "keys", "create", "--url", url, "--token", testToken, "--app", "app_1", "--name", "ci", "--expires", "2027-01-31")
	if r.err != nil {
		t.Fatal(r.errLine())
	}
	if n := strings.Count(r.stdout, testPlainKey); n != 1 {
		t.Errorf("the key appears %d times in\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stdout, "\n"+testPlainKey+"\n") {
		t.Errorf("the key is not alone on its line:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "will not be shown again") {
		t.Errorf("no shown-once notice:\n%s", r.stdout)
	}
	c := f.last()
	if c.auth != "Bearer "+testToken || c.body["expires_at"] != "2027-02-01T00:00:00Z" || c.body["name"] != "ci" {
		t.Errorf("sent %+v", c)
	}
	if _, ok := c.body["save_as_secret"]; ok {
		t.Errorf("save_as_secret sent without the flag: %v", c.body)
	}

	// -o json: stdout is one JSON document with the key; the notice is beside it.
	r = runCLI(t, nil, "keys", "create", "-o", "json", "--url", url, "--token", testToken, "--app", "app_1", "--name", "ci", "--expires", "30d")
	if r.err != nil {
		t.Fatal(r.errLine())
	}
	var got client.CreatedKey
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.PlainKey != testPlainKey || got.ID != "key_1" {
		t.Errorf("json output %q: %v", r.stdout, err)
	}
	if !strings.Contains(r.stderr, "will not be shown again") {
		t.Errorf("no notice on stderr: %q", r.stderr)
	}
}

// With --save-as-secret the key is never printed, even by a service that
// sends it anyway.
func TestKeysCreateSaveAsSecretNeverPrintsKey(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"POST /v1/apps/app_1/keys": {201, createdKey + `,"secret_name":"ci-key","key":"` + testPlainKey + `"}`},
	})
	for _, out := range []string{"table", "json"} {
		r := runCLI(t, nil, "keys", "create", "-o", out, "--url", url, "--token", testToken,
			"--app", "app_1", "--name", "ci", "--expires", "30d", "--save-as-secret", "ci-key")
		if r.err != nil {
			t.Fatal(r.errLine())
		}
		if strings.Contains(r.stdout+r.stderr, testPlainKey) {
			t.Errorf("-o %s printed the key:\n%s%s", out, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "ci-key") {
			t.Errorf("-o %s does not name the secret:\n%s", out, r.stdout)
		}
		if f.last().body["save_as_secret"] != "ci-key" {
			t.Errorf("sent %v", f.last().body)
		}
	}
}

func TestKeysCreateResolvesAppName(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"GET /v1/apps":             {200, `{"apps":[{"id":"app_9","name":"shop","kind":"cloud_function","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1","active_keys":0,"orphaned_keys":0}]}`},
		"POST /v1/apps/app_9/keys": {201, createdKey + `,"key":"` + testPlainKey + `"}`},
	})
	r := runCLI(t, nil, "keys", "create", "--url", url, "--token", testToken, "--app", "shop", "--name", "ci", "--expires", "1d")
	if r.err != nil {
		t.Fatal(r.errLine())
	}
	if got := f.routes(); len(got) != 2 || got[1] != "POST /v1/apps/app_9/keys" {
		t.Errorf("calls %v", got)
	}
	r = runCLI(t, nil, "keys", "list", "--url", url, "--token", testToken, "--app", "nope")
	if r.err == nil || !strings.Contains(r.err.Error(), `no app named "nope"`) {
		t.Errorf("unknown app name: %v", r.err)
	}
}

func TestKeysListState(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"GET /v1/keys":            {200, `{"keys":[]}`},
		"GET /v1/apps/app_1/keys": {200, `{"keys":[` + createdKey + `}]}`},
	})
	r := runCLI(t, nil, "keys", "list", "--url", url, "--token", testToken, "--state", "orphaned")
	if r.err != nil || f.last().route != "GET /v1/keys" || f.last().query != "state=orphaned" {
		t.Fatalf("%v %+v", r.err, f.last())
	}
	r = runCLI(t, nil, "keys", "list", "-o", "json", "--url", url, "--token", testToken)
	if r.err != nil || strings.TrimSpace(r.stdout) != "{\n  \"keys\": []\n}" {
		t.Fatalf("%v %q", r.err, r.stdout)
	}
	r = runCLI(t, nil, "keys", "list", "--url", url, "--token", testToken, "--app", "app_1", "--state", "active")
	if r.err != nil || f.last().query != "state=active" || !strings.Contains(r.stdout, "shop (app_1)") {
		t.Fatalf("%v %+v\n%s", r.err, f.last(), r.stdout)
	}
	r = runCLI(t, nil, "keys", "list", "--url", url, "--token", testToken, "--state", "revoked")
	if r.err == nil || !strings.Contains(r.err.Error(), `invalid --state "revoked"`) {
		t.Errorf("bad state: %v", r.err)
	}
}

func TestRevokeConfirmation(t *testing.T) {
	cases := []struct {
		name      string
		stdin     io.Reader
		yes       bool
		wantErr   string
		wantCalls int
	}{
		{name: "no terminal", stdin: strings.NewReader("y\n"), wantErr: "refusing to revoke key key_1 without confirmation"},
		{name: "answered no", stdin: fakeTerminal{strings.NewReader("n\n")}, wantErr: "cancelled"},
		{name: "no answer", stdin: fakeTerminal{strings.NewReader("")}, wantErr: "cancelled"},
		{name: "answered yes", stdin: fakeTerminal{strings.NewReader("yes\n")}, wantCalls: 1},
		{name: "--yes", stdin: strings.NewReader(""), yes: true, wantCalls: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, url := newFakeAPI(t, map[string]fakeAnswer{"DELETE /v1/keys/key_1": {204, ""}})
			args := []string{"keys", "revoke", "key_1", "--url", url, "--token", testToken}
			if tc.yes {
				args = append(args, "--yes")
			}
			r := runCLI(t, tc.stdin, args...)
			if tc.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", r.err, tc.wantErr)
				}
			} else if r.err != nil {
				t.Error(r.errLine())
			}
			if got := len(f.routes()); got != tc.wantCalls {
				t.Errorf("%d calls, want %d", got, tc.wantCalls)
			}
			if tc.wantCalls == 1 && !strings.Contains(r.stdout, "Revoked key key_1.") {
				t.Errorf("stdout %q", r.stdout)
			}
			if _, isTerm := tc.stdin.(fakeTerminal); isTerm && !strings.Contains(r.stderr, "Revoke key key_1?") {
				t.Errorf("no prompt on stderr: %q", r.stderr)
			}
		})
	}
}

func TestAppsDeleteConfirmationNamesTheApp(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"GET /v1/apps/app_1":    {200, `{"id":"app_1","name":"shop","kind":"cloud_function","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1","active_keys":3,"orphaned_keys":0}`},
		"DELETE /v1/apps/app_1": {204, ""},
	})
	r := runCLI(t, fakeTerminal{strings.NewReader("y\n")}, "apps", "delete", "app_1", "--url", url, "--token", testToken)
	if r.err != nil {
		t.Fatal(r.errLine())
	}
	if !strings.Contains(r.stderr, "Delete app shop (app_1)? Its 3 active keys become orphaned") {
		t.Errorf("prompt %q", r.stderr)
	}
	if got := f.routes(); len(got) != 2 || got[1] != "DELETE /v1/apps/app_1" {
		t.Errorf("calls %v", got)
	}
}

func TestSecretsCreateFromStdin(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{
		"POST /v1/secrets": {201, `{"name":"db","created_at":"2026-01-01T00:00:00Z","created_by":"usr_1"}`},
	})
	r := runCLI(t, strings.NewReader("s3cr3t value\n"), "secrets", "create", "--name", "db", "--from-stdin", "--url", url, "--token", testToken)
	if r.err != nil {
		t.Fatal(r.errLine())
	}
	if v := f.last().body["value"]; v != "s3cr3t value" {
		t.Errorf("sent value %q", v)
	}
	if strings.Contains(r.stdout, "s3cr3t") {
		t.Errorf("create printed the value: %s", r.stdout)
	}
	r = runCLI(t, strings.NewReader(""), "secrets", "create", "--name", "db", "--from-stdin", "--url", url, "--token", testToken)
	if r.err == nil || !strings.Contains(r.err.Error(), "empty") {
		t.Errorf("empty stdin: %v", r.err)
	}
	r = runCLI(t, nil, "secrets", "create", "--name", "db", "--value", "x", "--from-stdin", "--url", url, "--token", testToken)
	if r.err == nil {
		t.Error("--value and --from-stdin together accepted")
	}
}

func TestConnectionFlagsAndEnv(t *testing.T) {
	f, url := newFakeAPI(t, map[string]fakeAnswer{"GET /v1/apps": {200, `{"apps":[]}`}})
	t.Setenv(envURL, url)
	t.Setenv(envToken, "env_token")
	if r := runCLI(t, nil, "apps", "list"); r.err != nil || f.last().auth != "Bearer env_token" {
		t.Fatalf("from env: %v %+v", r.err, f.last())
	}
	if r := runCLI(t, nil, "apps", "list", "--token", "flag_token"); r.err != nil || f.last().auth != "Bearer flag_token" {
		t.Fatalf("flag over env: %v %+v", r.err, f.last())
	}
	t.Setenv(envToken, "")
	r := runCLI(t, nil, "apps", "list")
	if r.err == nil || r.errLine() != "appkeys: no token: set APPKEYS_TOKEN or pass --token" {
		t.Errorf("no token: %q", r.errLine())
	}
	r = runCLI(t, nil, "apps", "list", "--token", "x", "-o", "yaml")
	if r.err == nil || !strings.Contains(r.err.Error(), `invalid output format "yaml"`) {
		t.Errorf("-o yaml: %v", r.err)
	}
}

// The help never shows a token taken from the environment.
func TestHelpHidesToken(t *testing.T) {
	t.Setenv(envToken, testToken)
	r := runCLI(t, nil, "keys", "list", "--help")
	if r.err != nil || strings.Contains(r.stdout+r.stderr, testToken) || !strings.Contains(r.stdout, "--token") {
		t.Errorf("%v\n%s", r.err, r.stdout)
	}
}

// TestMainProcess is main() in a child process, so TestErrorLine can check
// what a user sees: stderr and the exit status.
func TestMainProcess(t *testing.T) {
	if os.Getenv("APPKEYS_CLI_TEST_MAIN") != "1" {
		t.Skip("the child process of TestErrorLine")
	}
	for i, a := range os.Args {
		if a == "--" {
			os.Args = append([]string{"appkeys"}, os.Args[i+1:]...)
			break
		}
	}
	main()
	os.Exit(0)
}

// Every error is one line on stderr that starts "appkeys: ", says what
// failed with the service's own message, exits non-zero, and never shows the
// token or a key.
func TestErrorLine(t *testing.T) {
	_, url := newFakeAPI(t, map[string]fakeAnswer{
		"DELETE /v1/keys/key_1":    {403, `{"error":{"code":"forbidden","message":"only an owner or aura owner may revoke an orphaned key"}}`},
		"POST /v1/apps/app_1/keys": {422, `{"error":{"code":"invalid_argument","message":"expires_at is beyond the maximum lifetime of 365 days"}}`},
		"GET /v1/secrets/missing":  {404, `{"error":{"code":"not_found","message":"no secret named missing"}}`},
	})
	// A port nothing listens on: the listener is closed at once.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	cases := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "forbidden",
			args: []string{"keys", "revoke", "key_1", "--yes", "--url", url, "--token", testToken},
			want: "appkeys: revoke key key_1: only an owner or aura owner may revoke an orphaned key (forbidden, HTTP 403)",
		},
		{
			name: "invalid argument",
			args: []string{"keys", "create", "--app", "app_1", "--name", "n", "--expires", "9999d", "--url", url, "--token", testToken},
			want: "appkeys: create key: expires_at is beyond the maximum lifetime of 365 days (invalid_argument, HTTP 422)",
		},
		{
			name: "not found",
			args: []string{"secrets", "get", "missing", "--url", url, "--token", testToken},
			want: "appkeys: get secret missing: no secret named missing (not_found, HTTP 404)",
		},
		{
			name: "bad expiry",
			args: []string{"keys", "create", "--app", "app_1", "--name", "n", "--expires", "soon", "--url", url, "--token", testToken},
			want: `appkeys: invalid --expires "soon": use days or hours from now (30d, 12h), a date (2027-01-31, the end of that day UTC) or an RFC 3339 time (2027-01-31T12:00:00Z)`,
		},
		{
			name: "unreachable",
			args: []string{"apps", "list", "--url", dead.URL, "--token", testToken},
			want: "appkeys: list apps: GET " + dead.URL + "/v1/apps: dial tcp " + strings.TrimPrefix(dead.URL, "http://") + ": connect: connection refused",
		},
		{
			name: "usage",
			args: []string{"apps", "get"},
			want: "appkeys: accepts 1 arg(s), received 0",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestMainProcess$", "--"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "APPKEYS_CLI_TEST_MAIN=1", envToken+"=", envURL+"=")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("exit: %v (stderr %q)", err, stderr.String())
			}
			if got := stderr.String(); got != tc.want+"\n" {
				t.Errorf("stderr\n%q\nwant\n%q", got, tc.want+"\n")
			}
			if strings.Contains(stdout.String()+stderr.String(), testToken) {
				t.Error("the token was printed")
			}
		})
	}
}
