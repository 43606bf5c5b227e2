package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Handler{KeyService: "http://127.0.0.1:8700", App: "app_123", VerifierToken: "secret", Header: "X-Custom-Key",
		CacheSize: 500, CacheTTL: caddy.Duration(10 * time.Minute), NegativeTTL: caddy.Duration(3 * time.Second),
		StaleIfError: caddy.Duration(time.Minute), Timeout: caddy.Duration(750 * time.Millisecond),
		FeedDownRevalidate: caddy.Duration(20 * time.Second)}
	if h != want {
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
		time.Duration(h.Timeout) != 2*time.Second || time.Duration(h.FeedDownRevalidate) != 30*time.Second {
		t.Fatalf("defaults: %+v", h)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for input, want := range map[string]string{
		`appkey_auth extra`:                          "wrong argument count",
		"appkey_auth {\nbogus 1\n}":                  "unrecognized subdirective: bogus",
		"appkey_auth {\napp\n}":                      "wrong argument count",
		"appkey_auth {\napp a b\n}":                  "wrong argument count",
		"appkey_auth {\ncache_size -1\n}":            "cache_size",
		"appkey_auth {\ncache_size many\n}":          "cache_size",
		"appkey_auth {\ncache_ttl soon\n}":           "cache_ttl",
		"appkey_auth {\ntimeout 0s\n}":               "timeout",
		"appkey_auth {\nheader \"X Bad\"\n}":         "header",
		"appkey_auth {\nfeed_down_revalidate -5s\n}": "feed_down_revalidate",
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v; want %q", input, err, want)
		}
	}
}

// FuzzUnmarshalCaddyfile: no input makes the directive's parser panic, and
// what it accepts passes Validate or is refused with an error.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("appkey_auth {\n key_service http://127.0.0.1:8700\n app app_1\n verifier_token t\n}")
	f.Add("appkey_auth {\n cache_ttl 5m\n header X-Key\n cache_size 10\n}")
	f.Add("appkey_auth { timeout 1d }")
	f.Add("appkey_auth {\n {\n}")
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
		_ = h.Validate()
		if h.CacheSize < 0 || h.CacheTTL < 0 || h.Timeout < 0 {
			t.Fatalf("accepted negative settings: %+v", h)
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
