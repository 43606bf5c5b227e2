// Package e2e runs the sidecar (Caddy with appkey_auth) end to end against
// the real key service on real SQLite (and again on PostgreSQL in make
// test, where two replicas also share one database), in front of a real
// upstream. The
// tests live in the _test files; the non-test files are what they share with
// the standalone revocation-latency harness (go run ./bench/revocation): the
// sidecar's Caddyfile and the measurement itself.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// Site is one sidecar site: a port on 127.0.0.1 guarding one app.
type Site struct {
	Port  int
	App   string
	Token string // the app's verifier token
	// Auth holds extra appkey_auth lines, such as "cache_ttl 10m".
	Auth []string
	// Directives holds extra site directives, such as "header X-Gen 1".
	Directives []string
}

// URL is the site's base URL.
func (s Site) URL() string { return fmt.Sprintf("http://127.0.0.1:%d/", s.Port) }

// Caddyfile is a whole Caddy config: the admin endpoint at admin (which a
// test's Caddy must keep) and one site per Site, each checking keys at
// keyService and proxying to upstream (host:port).
func Caddyfile(admin, keyService, upstream string, sites ...Site) string {
	return caddyfile(admin, nil, keyService, upstream, sites...)
}

// caddyfile is Caddyfile with more global options, such as
// "servers {\n\t\tprotocols h1 h2c\n\t}".
func caddyfile(admin string, globals []string, keyService, upstream string, sites ...Site) string {
	var b strings.Builder
	b.WriteString(GlobalOptions(admin, globals...))
	for _, s := range sites {
		fmt.Fprintf(&b, "\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n\tappkey_auth %s\n", s.Port, authBlock(keyService, s, "\t"))
		for _, l := range s.Directives {
			fmt.Fprintf(&b, "\t%s\n", l)
		}
		fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", upstream)
	}
	return b.String()
}

// GlobalOptions is the sidecar config's global block: the admin endpoint at
// admin, plain HTTP on loopback, and only errors logged, so that a failing
// test's output is not buried under Caddy's logs.
func GlobalOptions(admin string, globals ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tauto_https off\n\tpersist_config off\n\tskip_install_trust\n\tlog {\n\t\tlevel ERROR\n\t}\n", admin)
	for _, g := range globals {
		fmt.Fprintf(&b, "\t%s\n", g)
	}
	b.WriteString("}\n")
	return b.String()
}

// authBlock is the braced block of an appkey_auth directive for site s,
// asking keyService; indent is the directive's own indentation.
func authBlock(keyService string, s Site, indent string) string {
	var b strings.Builder
	b.WriteString("{\n")
	fmt.Fprintf(&b, "%[1]s\tkey_service %[2]s\n%[1]s\tapp %[3]s\n%[1]s\tverifier_token %[4]s\n", indent, keyService, s.App, s.Token)
	// One client address sends every bad key here: the per-client
	// throttle would answer 429 for what is being measured, unless the
	// site sets its own (a setting may be given only once).
	if !slices.ContainsFunc(s.Auth, func(l string) bool { return strings.HasPrefix(l, "failed_attempts ") }) {
		fmt.Fprintf(&b, "%s\tfailed_attempts off\n", indent)
	}
	for _, l := range s.Auth {
		fmt.Fprintf(&b, "%s\t%s\n", indent, l)
	}
	fmt.Fprintf(&b, "%s}", indent)
	return b.String()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It
// picks below Linux's ephemeral range (32768 and up): a port from that range
// can be taken, between this check and Caddy's bind, as the local port of
// any outgoing connection, and the tests make thousands. It never returns
// a port twice in one process: several sites are given their ports before
// Caddy binds any, and two alike would make one config ambiguous.
func FreePort() (int, error) {
	var err error
	for range 100 {
		port := 20000 + rand.IntN(12000)
		givenMu.Lock()
		taken := given[port]
		givenMu.Unlock()
		if taken {
			continue
		}
		var l net.Listener
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			l.Close()
			givenMu.Lock()
			given[port] = true
			givenMu.Unlock()
			return port, nil
		}
	}
	if err == nil {
		err = fmt.Errorf("no free port found")
	}
	return 0, err
}

// TestPort is FreePort for a test, which it fails when no port is found.
func TestPort(tb testing.TB) int {
	tb.Helper()
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

var (
	givenMu sync.Mutex
	given   = map[int]bool{} // ports FreePort has returned
)

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// metric sums the samples of family name (exposition text) whose labels
// include every pair of want.
func metric(text, name string, want ...string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		labels := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				continue
			}
			for _, m := range labelRE.FindAllStringSubmatch(rest[1:end], -1) {
				labels[m[1]] = m[2]
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // another family with this prefix
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// Handlers lists the handler names of an adapted Caddy JSON config's routes,
// server by server in route order: what tests of directive order compare.
func Handlers(adapted []byte) ([]string, error) {
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Handler string `json:"handler"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		return nil, err
	}
	var names []string
	for _, srv := range slices.Sorted(maps.Keys(cfg.Apps.HTTP.Servers)) {
		for _, r := range cfg.Apps.HTTP.Servers[srv].Routes {
			for _, h := range r.Handle {
				names = append(names, h.Handler)
			}
		}
	}
	return names, nil
}

// Get sends GET / to the sidecar site on port with key in X-API-Key (no
// key when empty) and returns the answer, its body read and closed.
func Get(c *http.Client, port int, key string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// LoadCaddyfile adapts a Caddyfile and loads it into this process's Caddy:
// how the standalone harnesses (go run ./bench/...) run their sidecar.
func LoadCaddyfile(caddyfile string) error {
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	return caddy.Load(js, true)
}

// Stderrf is a harness's progress log: a line on standard error.
func Stderrf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
