package caddymodule

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The directive sorts where Caddy sorts its own authentication, basic_auth
// and forward_auth: after header, redir, rewrite and try_files, before
// request_header, handle, handle_path, route, respond, reverse_proxy,
// file_server and every other handler that answers. Ordered any later, a
// sibling handle or respond would answer first and a path would be served
// without a key.
func init() {
	httpcaddyfile.RegisterHandlerDirective("appkey_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("appkey_auth", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	appkey_auth [<matcher>] {
//	    key_service          <url>
//	    app                  <app id>
//	    verifier_token       <token>
//	    header               <name>      # default X-API-Key; Authorization: Bearer always works
//	    cache_size           <n>         # default 100000
//	    cache_ttl            <duration>  # default 5m
//	    negative_ttl         <duration>  # default 10s
//	    stale_if_error       <duration>  # default 5m
//	    timeout              <duration>  # default 2s
//	    feed_down_revalidate <duration>  # default 30s
//	    ca_file              <path>      # PEM CA(s) for an https:// key_service; default: system roots
//	    tls_server_name      <name>      # name the key service's certificate must carry
//	    failed_attempts      <n>/<duration> | off  # bad keys per client address; default 20/1m
//	    trusted_networks     <cidr|private_ranges...>  # never throttled; repeatable
//	}
//
// failed_attempts 20/1m lets each client address send 20 bad keys at once
// and earn them back at 20 a minute; past that it gets 429 with
// Retry-After. A key not already cached as valid takes an attempt before
// it is checked, so no more than 20 are checked at once; the attempt comes
// back when the key proves good or the key service cannot answer, and a
// request abandoned before its answer keeps it.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name == "trusted_networks" {
			if !d.NextArg() {
				return d.ArgErr()
			}
			for ok := true; ok; ok = d.NextArg() {
				if d.Val() == "private_ranges" {
					h.TrustedNetworks = append(h.TrustedNetworks, caddyhttp.PrivateRangesCIDR()...)
					continue
				}
				if _, err := caddyhttp.CIDRExpressionToPrefix(d.Val()); err != nil {
					return d.Errf("trusted_networks: %v", err)
				}
				h.TrustedNetworks = append(h.TrustedNetworks, d.Val())
			}
			continue
		}
		switch name {
		case "key_service", "app", "verifier_token", "header", "cache_size",
			"cache_ttl", "negative_ttl", "stale_if_error", "timeout", "feed_down_revalidate",
			"ca_file", "tls_server_name", "failed_attempts":
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}
		var arg string
		if !d.AllArgs(&arg) {
			return d.ArgErr()
		}
		switch name {
		case "key_service":
			h.KeyService = arg
		case "app":
			h.App = arg
		case "verifier_token":
			h.VerifierToken = arg
		case "ca_file":
			h.CAFile = arg
		case "tls_server_name":
			h.TLSServerName = arg
		case "failed_attempts":
			fa, err := parseFailedAttempts(arg)
			if err != nil {
				return d.Errf("failed_attempts: %v", err)
			}
			h.FailedAttempts = fa
		case "header":
			if !validHeaderName(arg) {
				return d.Errf("header: %q is not a valid header name", arg)
			}
			h.Header = arg
		case "cache_size":
			n, err := strconv.Atoi(arg)
			if err != nil || n <= 0 {
				return d.Errf("cache_size: want a positive number, got %q", arg)
			}
			h.CacheSize = n
		case "cache_ttl", "negative_ttl", "stale_if_error", "timeout", "feed_down_revalidate":
			dur, err := caddy.ParseDuration(arg)
			if err != nil || dur <= 0 {
				return d.Errf("%s: want a positive duration, got %q", name, arg)
			}
			*map[string]*caddy.Duration{
				"cache_ttl":            &h.CacheTTL,
				"negative_ttl":         &h.NegativeTTL,
				"stale_if_error":       &h.StaleIfError,
				"timeout":              &h.Timeout,
				"feed_down_revalidate": &h.FeedDownRevalidate,
			}[name] = caddy.Duration(dur)
		}
	}
	return nil
}

// parseFailedAttempts reads `off` or `<limit>/<window>`, such as `20/1m`.
func parseFailedAttempts(s string) (*FailedAttempts, error) {
	if s == "off" {
		return &FailedAttempts{Off: true}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	limit, err := strconv.Atoi(n)
	if !ok || err != nil || limit <= 0 {
		return nil, errFailedAttempts(s)
	}
	window, err := caddy.ParseDuration(w)
	if err != nil || window <= 0 || window > 24*time.Hour {
		return nil, errFailedAttempts(s)
	}
	return &FailedAttempts{Limit: limit, Window: caddy.Duration(window)}, nil
}

type errFailedAttempts string

func (e errFailedAttempts) Error() string {
	return "want off or <limit>/<window> such as 20/1m, got " + strconv.Quote(string(e))
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
