package caddymodule

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/e2e"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`appkey_auth {
		key_service    http://127.0.0.1:8700
		app            app_123
		verifier_token secret
		header         X-Custom-Key
		cache_size     500
		cache_ttl      10m
		negative_ttl   3s
		stale_if_error 1m
		timeout        750ms
		feed_down_revalidate 20s
		ca_file        /etc/appkeys/ca.pem
		tls_server_name keys.internal
		failed_attempts 5/30s
		max_verify_calls 16
		trusted_networks 10.0.0.0/8 192.0.2.7
		trusted_networks 2001:db8::/32
		limit_share    3
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Handler{KeyService: "http://127.0.0.1:8700", App: "app_123", VerifierToken: "secret", Header: "X-Custom-Key",
		CacheSize: 500, CacheTTL: caddy.Duration(10 * time.Minute), NegativeTTL: caddy.Duration(3 * time.Second),
		StaleIfError: caddy.Duration(time.Minute), Timeout: caddy.Duration(750 * time.Millisecond),
		FeedDownRevalidate: caddy.Duration(20 * time.Second), CAFile: "/etc/appkeys/ca.pem", TLSServerName: "keys.internal",
		FailedAttempts:  &FailedAttempts{Limit: 5, Window: caddy.Duration(30 * time.Second)},
		TrustedNetworks: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}, MaxVerifyCalls: 16, LimitShare: 3}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
}

func TestUnmarshalCaddyfileDefaults(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`appkey_auth {
		key_service http://ks:8700
		app app_1
		verifier_token t
	}`)); err != nil {
		t.Fatal(err)
	}
	h.setDefaults()
	if h.Header != "X-API-Key" || h.CacheSize != 100000 || time.Duration(h.CacheTTL) != 5*time.Minute ||
		time.Duration(h.NegativeTTL) != 10*time.Second || time.Duration(h.StaleIfError) != 5*time.Minute ||
		time.Duration(h.Timeout) != 2*time.Second || time.Duration(h.FeedDownRevalidate) != 30*time.Second ||
		*h.FailedAttempts != (FailedAttempts{Limit: 20, Window: caddy.Duration(time.Minute)}) || h.CAFile != "" || h.TrustedNetworks != nil ||
		h.MaxVerifyCalls != 64 {
		t.Fatalf("defaults: %+v", h)
	}
}

func TestUnmarshalCaddyfileThrottleOffAndPrivateRanges(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`appkey_auth {
		failed_attempts off
		trusted_networks private_ranges
	}`)); err != nil {
		t.Fatal(err)
	}
	h.setDefaults()
	if !h.FailedAttempts.Off || h.FailedAttempts.Limit != 0 || len(h.TrustedNetworks) < 4 || h.TrustedNetworks[0] != "192.168.0.0/16" {
		t.Fatalf("got %+v, %v", h.FailedAttempts, h.TrustedNetworks)
	}
}

// max_verify_calls off lifts the cap: -1 in JSON, which validate accepts
// and setDefaults keeps.
func TestUnmarshalCaddyfileMaxVerifyCallsOff(t *testing.T) {
	h := Handler{KeyService: "http://ks:8700", App: "app_1", VerifierToken: "t"}
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("appkey_auth {\nmax_verify_calls off\n}")); err != nil {
		t.Fatal(err)
	}
	h.setDefaults()
	if h.MaxVerifyCalls != -1 || h.validate() != nil {
		t.Fatalf("max_verify_calls off: %d, %v", h.MaxVerifyCalls, h.validate())
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for input, want := range map[string]string{
		`appkey_auth extra`:                              "wrong argument count",
		"appkey_auth {\nbogus 1\n}":                      "unrecognized subdirective: bogus",
		"appkey_auth {\napp\n}":                          "wrong argument count",
		"appkey_auth {\napp a b\n}":                      "wrong argument count",
		"appkey_auth {\ncache_size -1\n}":                "cache_size",
		"appkey_auth {\ncache_size many\n}":              "cache_size",
		"appkey_auth {\ncache_ttl soon\n}":               "cache_ttl",
		"appkey_auth {\ntimeout 0s\n}":                   "timeout",
		"appkey_auth {\nheader \"X Bad\"\n}":             "header",
		"appkey_auth {\nfeed_down_revalidate -5s\n}":     "feed_down_revalidate",
		"appkey_auth {\nfailed_attempts 20\n}":           "failed_attempts",
		"appkey_auth {\nfailed_attempts 0/1m\n}":         "failed_attempts",
		"appkey_auth {\nfailed_attempts 5/0s\n}":         "failed_attempts",
		"appkey_auth {\nfailed_attempts 5/1m 2\n}":       "wrong argument count",
		"appkey_auth {\nfailed_attempts on\n}":           "failed_attempts",
		"appkey_auth {\ntrusted_networks\n}":             "wrong argument count",
		"appkey_auth {\ntrusted_networks 10.0.0.0/33\n}": "trusted_networks",
		"appkey_auth {\ntrusted_networks nowhere\n}":     "trusted_networks",
		"appkey_auth {\nca_file\n}":                      "wrong argument count",
		// A second line for one setting is a mistake (which one wins?): refused.
		"appkey_auth {\napp app_a\napp app_b\n}":                      "app: given twice",
		"appkey_auth {\ncache_ttl 1m\ncache_ttl 2m\n}":                "cache_ttl: given twice",
		"appkey_auth {\nfailed_attempts off\nfailed_attempts 5/1m\n}": "failed_attempts: given twice",
		"appkey_auth {\ncache_size 5\ncache_size 6\n}":                "cache_size: given twice",
		// The cap on concurrent verify calls: a positive count or off.
		"appkey_auth {\nmax_verify_calls 0\n}":                      "max_verify_calls: want a positive number or off, got \"0\"",
		"appkey_auth {\nmax_verify_calls -4\n}":                     "max_verify_calls: want a positive number or off",
		"appkey_auth {\nmax_verify_calls lots\n}":                   "max_verify_calls: want a positive number or off",
		"appkey_auth {\nmax_verify_calls 1.5\n}":                    "max_verify_calls: want a positive number or off",
		"appkey_auth {\nmax_verify_calls 99999999\n}":               "max_verify_calls: at most 65536",
		"appkey_auth {\nmax_verify_calls\n}":                        "wrong argument count",
		"appkey_auth {\nmax_verify_calls 8 16\n}":                   "wrong argument count",
		"appkey_auth {\nmax_verify_calls 8\nmax_verify_calls 16\n}": "max_verify_calls: given twice",
		"appkey_auth {\nlimit_share 0\n}":                           "limit_share",
		"appkey_auth {\nlimit_share -2\n}":                          "limit_share",
		"appkey_auth {\nlimit_share 10001\n}":                       "limit_share",
		"appkey_auth {\nlimit_share two\n}":                         "limit_share",
		"appkey_auth {\nlimit_share 2\nlimit_share 3\n}":            "limit_share: given twice",
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v; want %q", input, err, want)
		}
	}
}

// FuzzUnmarshalCaddyfile: no input makes the directive's parser panic, and
// what it accepts passes validate or is refused with an error.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("appkey_auth {\n key_service http://127.0.0.1:8700\n app app_1\n verifier_token t\n}")
	f.Add("appkey_auth {\n cache_ttl 5m\n header X-Key\n cache_size 10\n}")
	f.Add("appkey_auth { timeout 1d }")
	f.Add("appkey_auth {\n {\n}")
	f.Add("appkey_auth {\n failed_attempts 20/1m\n trusted_networks 10.0.0.0/8 private_ranges ::1\n}")
	f.Add("appkey_auth {\n failed_attempts off\n ca_file /x.pem\n tls_server_name ks\n}")
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		if h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)) != nil {
			return
		}
		h.setDefaults()
		_ = h.validate()
		if h.CacheSize < 0 || h.CacheTTL < 0 || h.Timeout < 0 {
			t.Fatalf("accepted negative settings: %+v", h)
		}
		if fa := h.FailedAttempts; !fa.Off && (fa.Limit <= 0 || fa.Window <= 0) {
			t.Fatalf("accepted a throttle that cannot work: %+v", fa)
		}
		for _, n := range h.TrustedNetworks {
			if _, err := caddyhttp.CIDRExpressionToPrefix(n); err != nil {
				t.Fatalf("accepted trusted network %q: %v", n, err)
			}
		}
	})
}

// FuzzTakeKey: whatever the headers, the header the key came from is gone,
// and no header that goes upstream still carries an appkeys key.
func FuzzTakeKey(f *testing.F) {
	f.Add("cak_abc", "Bearer cak_abc", "X-Api-Key")
	f.Add("", "bearer   cak_x ", "X-Api-Key")
	f.Add("k", "Basic abc", "Authorization")
	f.Add("", "Bearer", "X-Key")
	f.Fuzz(func(t *testing.T, custom, authz, name string) {
		if !validHeaderName(name) {
			return
		}
		name = canonical(name)
		hdr := map[string][]string{}
		if custom != "" {
			hdr[name] = []string{custom}
		}
		if authz != "" {
			hdr["Authorization"] = append(hdr["Authorization"], authz)
		}
		key := takeKey(hdr, name)
		if key == "" {
			return
		}
		if _, ok := hdr[name]; ok && name != "Authorization" {
			t.Fatalf("header %s kept after its key was taken", name)
		}
		if !strings.HasPrefix(key, "cak_") {
			return
		}
		for k, vs := range hdr {
			for _, v := range vs {
				if strings.Contains(v, key) {
					t.Fatalf("key %q still in header %s: %q", key, k, v)
				}
			}
		}
	})
}

// TestDirectiveSortsWithBasicAuth: in a site whose directives are written
// in any order, appkey_auth lands where Caddy puts its own basic_auth:
// after header, redir and rewrite, before request_header, handle, respond,
// reverse_proxy and file_server. Sorted later, a sibling handle or respond
// would answer without a key (e2e's TestEveryShapeIsGuarded shows it
// through a running Caddy).
func TestDirectiveSortsWithBasicAuth(t *testing.T) {
	site := `:8080 {
	file_server
	respond /v 200
	handle /h {
		respond 200
	}
	reverse_proxy 127.0.0.1:9
	request_header X-A 1
	AUTH
	rewrite /a /b
	redir /r /s
	header X-B 1
}`
	handlers := func(auth string) []string {
		t.Helper()
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(strings.Replace(site, "AUTH", auth, 1)), nil)
		if err != nil {
			t.Fatal(err)
		}
		names, err := e2e.Handlers(out)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	ours := handlers("appkey_auth {\n\t\tkey_service http://127.0.0.1:1\n\t\tapp app_x\n\t\tverifier_token t\n\t}")
	theirs := handlers("basic_auth {\n\t\tu $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG\n\t}")
	for i, h := range theirs {
		if h == "authentication" {
			theirs[i] = "appkey_auth"
		}
	}
	if !reflect.DeepEqual(ours, theirs) {
		t.Fatalf("handlers in order\n%v\nwith basic_auth in its place\n%v", ours, theirs)
	}
	t.Logf("handlers in order: %v", ours)
}
