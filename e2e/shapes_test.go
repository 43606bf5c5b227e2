package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// probe is one request to a shape's site, sent once without a key and once
// with a good one.
type probe struct {
	path    string
	keyless int    // status without a key: 401, unless the path is open by design
	status  int    // status with a good key
	body    string // what the body with a good key contains
	header  string // "Name: value" every answer carries, if set
}

// guarded is a path that answers 401 without a key and status with body
// with a good one.
func guarded(path string, status int, body string) probe {
	return probe{path: path, keyless: http.StatusUnauthorized, status: status, body: body}
}

// open is a path the operator left without appkey_auth on purpose.
func open(path, body string) probe {
	return probe{path: path, keyless: http.StatusOK, status: http.StatusOK, body: body}
}

// TestEveryShapeIsGuarded loads the Caddyfile shapes operators write into
// one real Caddy, in front of the real key service, a real upstream, a
// directory for file_server and a real FastCGI responder, each shape its
// own site. No shape may serve a guarded path without a key: appkey_auth
// runs where Caddy runs basic_auth, before handle, route, respond and every
// handler that answers. header, redir and rewrite run before it, as they
// do before basic_auth.
//
// In a shape, $AUTH is the braced appkey_auth block, $UP the upstream
// (which answers "hello <key id>"), $ROOT the directory holding hello.txt
// and index.php, and $FCGI the FastCGI responder (which answers
// "fastcgi <path>"). {http.auth.user.id} in an answer is the key id
// appkey_auth set, so a 200 also shows that appkey_auth ran first.
func TestEveryShapeIsGuarded(t *testing.T) {
	s := newStack(t)
	a := s.app("shapes")
	key := s.key(nil, a.ID, time.Now().Add(time.Hour))
	hello, home := "hello "+key.ID, "home "+key.ID

	root := t.TempDir()
	for name, content := range map[string]string{"hello.txt": "static hello\n", "index.php": "<?php echo 'never read';\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	shapes := []struct {
		name   string
		body   string
		probes []probe
	}{
		{"handle", `
	appkey_auth $AUTH
	handle /api/* {
		reverse_proxy $UP
	}
	handle {
		respond "home {http.auth.user.id}" 200
	}`, []probe{guarded("/api/x", 200, hello), guarded("/", 200, home)}},

		{"handle_path", `
	appkey_auth $AUTH
	handle_path /api/* {
		reverse_proxy $UP
	}`, []probe{guarded("/api/x", 200, hello)}},

		{"route", `
	appkey_auth $AUTH
	route /r/* {
		respond "home {http.auth.user.id}" 200
	}`, []probe{guarded("/r/x", 200, home)}},

		{"respond", `
	appkey_auth $AUTH
	respond /version "v1 {http.auth.user.id}" 200
	reverse_proxy $UP`, []probe{guarded("/version", 200, "v1 "+key.ID), guarded("/", 200, hello)}},

		{"file_server", `
	appkey_auth $AUTH
	root * $ROOT
	file_server`, []probe{guarded("/hello.txt", 200, "static hello")}},

		{"php_fastcgi", `
	appkey_auth $AUTH
	root * $ROOT
	php_fastcgi $FCGI`, []probe{guarded("/index.php", 200, "fastcgi /index.php")}},

		{"nested route and handle", `
	appkey_auth $AUTH
	route /n/* {
		handle /n/a {
			respond "home {http.auth.user.id}" 200
		}
		handle {
			reverse_proxy $UP
		}
	}`, []probe{guarded("/n/a", 200, home), guarded("/n/b", 200, hello)}},

		{"named matcher", `
	appkey_auth $AUTH
	@api path /api/*
	handle @api {
		reverse_proxy $UP
	}
	handle {
		respond "home {http.auth.user.id}" 200
	}`, []probe{guarded("/api/x", 200, hello), guarded("/", 200, home)}},

		{"invoke", `
	appkey_auth $AUTH
	invoke /inv invoked`, []probe{guarded("/inv", 200, "invoked")}},

		{"metrics", `
	appkey_auth $AUTH
	metrics /metrics`, []probe{guarded("/metrics", 200, "# HELP")}},

		{"error", `
	appkey_auth $AUTH
	error /gone "gone" 410`, []probe{guarded("/gone", 410, "")}},

		// The matcher sees the rewritten path: /old is guarded.
		{"appkey_auth with a matcher", `
	appkey_auth /api/* $AUTH
	rewrite /old /api/x
	handle_path /api/* {
		reverse_proxy $UP
	}
	handle {
		respond "public" 200
	}`, []probe{guarded("/api/x", 200, hello), guarded("/old", 200, hello), open("/", "public")}},

		// In a route, directives run as written.
		{"appkey_auth first inside a route", `
	route /r/* {
		appkey_auth $AUTH
		respond "home {http.auth.user.id}" 200
	}
	respond "public" 200`, []probe{guarded("/r/x", 200, home), open("/", "public")}},

		// The other handle stays open by the operator's choice.
		{"appkey_auth inside one handle", `
	handle /private/* {
		appkey_auth $AUTH
		respond "home {http.auth.user.id}" 200
	}
	handle {
		respond "public" 200
	}`, []probe{guarded("/private/x", 200, home), open("/", "public")}},

		// rewrite runs first; the rewritten request is still checked.
		{"rewrite", `
	appkey_auth $AUTH
	rewrite /old /api/x
	handle /api/* {
		reverse_proxy $UP
	}`, []probe{guarded("/old", 200, hello)}},

		// header and redir run before appkey_auth, as before basic_auth:
		// the 401 carries the header, and a redirect needs no key.
		{"header and redir", `
	appkey_auth $AUTH
	header X-Frame-Options DENY
	redir /old-docs /docs 308
	respond /docs "home {http.auth.user.id}" 200`, []probe{
			{path: "/docs", keyless: 401, status: 200, body: home, header: "X-Frame-Options: DENY"},
			{path: "/old-docs", keyless: 308, status: 308, header: "Location: /docs"},
		}},
	}

	var b strings.Builder
	b.WriteString(GlobalOptions(admin))
	b.WriteString("\n&(invoked) {\n\trespond \"invoked\" 200\n}\n")
	fcgiAddr := fastCGI(t)
	ports := make([]int, len(shapes))
	for i, sh := range shapes {
		site := s.site(a)
		ports[i] = site.Port
		body := strings.NewReplacer(
			"$AUTH", authBlock(s.ks.URL, site, "\t"),
			"$UP", s.upstream.Listener.Addr().String(),
			"$ROOT", root,
			"$FCGI", fcgiAddr,
		).Replace(sh.body)
		fmt.Fprintf(&b, "\n# %s\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n%s\n}\n", sh.name, site.Port, body)
	}
	s.loadCaddyfile(b.String())

	c := &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(c.CloseIdleConnections)
	for i, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			for _, p := range sh.probes {
				url := fmt.Sprintf("http://127.0.0.1:%d%s", ports[i], p.path)
				got := fetch(t, c, url, "")
				if got.status != p.keyless {
					t.Errorf("%s without a key: %d %.60q, want %d", p.path, got.status, got.body, p.keyless)
				} else if p.keyless == http.StatusUnauthorized && got.header.Get("WWW-Authenticate") != challenge {
					t.Errorf("%s without a key: WWW-Authenticate %q", p.path, got.header.Get("WWW-Authenticate"))
				}
				checkHeader(t, p, got, "without a key")
				got = fetch(t, c, url, key.PlainKey)
				if got.status != p.status || !strings.Contains(got.body, p.body) {
					t.Errorf("%s with a good key: %d %.60q, want %d with %q", p.path, got.status, got.body, p.status, p.body)
				}
				checkHeader(t, p, got, "with a good key")
			}
		})
	}
}

func checkHeader(t *testing.T, p probe, got answer, how string) {
	t.Helper()
	if p.header == "" {
		return
	}
	name, want, _ := strings.Cut(p.header, ": ")
	if v := got.header.Get(name); v != want {
		t.Errorf("%s %s: %s %q, want %q", p.path, how, name, v, want)
	}
}

func fetch(t *testing.T, c *http.Client, url, key string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// fastCGI starts a FastCGI responder on 127.0.0.1 for php_fastcgi to reach,
// answering "fastcgi <path>", and returns its address.
func fastCGI(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "fastcgi %s", r.URL.Path)
	}))
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}
